"""Issue 15's engine messages survive the worker-process carrier (msgpack) unchanged, and a
command the host cannot deliver is answered with the failure its requester waits for."""

from audionode.engine import messages as m
from audionode.sources.api import Playable


def test_hearing_commands_and_events_round_trip() -> None:
    commands = [
        m.AddLayer(player=1, layer=2, source=Playable.from_url("http://x"), volume=0.5, duck=0.25),
        m.RemoveLayer(player=1, layer=2),
        m.StartRecording(player=1, recording="r", name="r"),
        m.StopRecording(player=1, recording="r"),
        m.OpenVdp(player=1, room_id="!a:b"),
        m.SetVdpPeer(player=1, room_id="!a:b", host="127.0.0.1", port=5),
        m.CloseVdp(player=1, room_id="!a:b"),
    ]
    for cmd in commands:
        assert m.command_decoder.decode(m.encoder.encode(cmd)) == cmd
    files = [m.RecordedFile(name="mixed.ogg", user_id=None, start=0.0, seconds=1.5, bytes=9)]
    events = [
        m.LayerStarted(player=1, layer=2),
        m.LayerEnded(player=1, layer=2, reason="error", message="x"),
        m.RecordingStarted(player=1, recording="r", directory="/d/r"),
        m.RecordingStopped(player=1, recording="r", reason="stopped", files=files),
        m.VdpOpened(player=1, room_id="!a:b", address="127.0.0.1:9"),
        m.VdpClosed(player=1, room_id="!a:b", reason="peer_timeout"),
    ]
    for ev in events:
        assert m.event_decoder.decode(m.encoder.encode(ev)) == ev


def test_an_undeliverable_command_fails_what_waits_for_it() -> None:
    add = m.AddLayer(player=1, layer=3, source=Playable.from_bytes(b"x"))
    assert m.refusal(add, "too big") == m.LayerEnded(
        player=1, layer=3, reason="error", message="too big"
    )
    start = m.StartRecording(player=1, recording="r", name="r")
    assert isinstance(m.refusal(start, "gone"), m.RecordingStopped)
    assert m.refusal(m.OpenVdp(player=1, room_id="!a:b"), "gone") == m.VdpClosed(
        player=1, room_id="!a:b", reason="error", message="gone"
    )
