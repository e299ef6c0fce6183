"""Commands and events survive the worker-process carrier (msgpack) unchanged."""

from audionode.engine import messages as m
from audionode.sources.api import Playable


def test_every_command_round_trips() -> None:
    commands = [
        m.Connect(
            player=1, guild_id=1, user_id=2, channel_id=3, session_id="s", token="t", endpoint="e"
        ),
        m.Disconnect(player=1),
        m.Play(player=1, serial=4, source=Playable.from_url("http://x"), start_ms=5, end_ms=None),
        m.Preload(player=1, serial=5, source=Playable.from_bytes(b"RIFF", format="wav")),
        m.Skip(player=1),
        m.Stop(player=1),
        m.Pause(player=1),
        m.Resume(player=1),
        m.Seek(player=1, position_ms=9),
        m.SetVolume(player=1, volume=0.5),
        m.SetFilters(player=1, filters={"timescale": {"speed": 1.2}}),
        m.SetCrossfade(player=1, seconds=2.0),
    ]
    for cmd in commands:
        assert m.command_decoder.decode(m.encoder.encode(cmd)) == cmd


def test_every_event_round_trips() -> None:
    events = [
        m.VoiceConnected(player=1, ssrc=7, mode="aead_aes256_gcm_rtpsize", dave_protocol_version=1),
        m.VoiceClosed(player=1, code=4014, reason="kicked", by_remote=True, will_reconnect=False),
        m.TrackStarted(player=1, serial=3),
        m.TrackEnded(player=1, serial=3, reason="finished"),
        m.TrackPosition(player=1, serial=3, position_ms=1000),
        m.NeedNext(player=1, serial=3),
        m.CommandFailed(player=1, command="SetFilters", message="bad"),
    ]
    for ev in events:
        assert m.event_decoder.decode(m.encoder.encode(ev)) == ev
