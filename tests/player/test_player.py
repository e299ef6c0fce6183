"""The guild player as a state machine: control calls and engine events in, commands and bot
events out. No engine or socket is involved; the end-to-end test covers those."""

from __future__ import annotations

from typing import Any

import pytest

from audionode.control import events as ev
from audionode.control.views import EntryView, TrackView
from audionode.engine import messages as m
from audionode.errors import Conflict, Unprocessable
from audionode.player.player import Callbacks, GuildPlayer, OpenRequest
from audionode.player.queue import Entry
from audionode.types import GuildId

_NAMES = {
    ev.QueueChanged: "Q",
    ev.TrackStarted: "SOURCE_START",
    ev.TrackEnded: "SOURCE_STOP",
    ev.TrackFailed: "SOURCE_TRACEBACK",
    ev.NextWanted: "REQUIRE_NEXT_SOURCE",
    ev.PositionChanged: "PLAYER_UPDATE",
    ev.VoiceConnected: "VOICE_CONNECTED",
    ev.VoiceClosed: "VOICE_CLOSED",
    ev.PlayerError: "PLAYER_TRACEBACK",
}


def view(e: Entry[Any]) -> EntryView:
    """Tracks in these tests are titles; "live..." ones are live streams, others last 60 s."""
    live = str(e.track).startswith("live")
    track = TrackView(
        source="test", id=e.track, title=e.track, duration=None if live else 60.0, is_live=live
    )
    return EntryView(track=track, tag=e.tag, context=e.context, start_position=e.start_position)


class Harness:
    def __init__(self) -> None:
        self.events: list[ev.ControlEvent] = []
        self.commands: list[m.Command] = []
        self.opens: list[OpenRequest] = []
        self.now = 1000.0
        cb = Callbacks(
            emit=self.events.append,
            command=self.commands.append,
            open=self.opens.append,
            describe=view,
            clock=lambda: self.now,
        )
        self.player = GuildPlayer(GuildId(7), 1, cb)
        self.player.connected = True

    def ops(self) -> list[str]:
        out = [
            f"Q:{e.op}" if isinstance(e, ev.QueueChanged) else _NAMES[type(e)] for e in self.events
        ]
        self.events.clear()
        return out

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def open_ok(self) -> OpenRequest:
        req = self.opens.pop(0)
        self.player.opened(req.serial, {"play": req.entry.track})
        return req

    def feed(self, event: m.Event) -> None:
        self.player.on_engine_event(event)

    def titles(self) -> list[str]:
        return [e.track for e in self.player.queue]

    def last_command(self) -> m.Command:
        return self.commands[-1]


def enqueue(h: Harness, *titles: str) -> None:
    h.player.enqueue([Entry(t) for t in titles])


def test_idle_player_opens_the_head_and_plays_it() -> None:
    h = Harness()
    enqueue(h, "a", "b", "c")
    assert h.ops() == ["Q:extend", "Q:pop"]
    req = h.open_ok()
    assert not req.preload and req.entry.track == "a"
    play = h.last_command()
    assert isinstance(play, m.Play) and play.serial == req.serial and play.source == {"play": "a"}
    assert h.player.state.name == "STOPPED"  # nothing audible until the first frame is sent
    h.feed(m.TrackStarted(player=1, serial=req.serial))
    assert h.ops() == ["SOURCE_START"] and h.player.state.name == "PLAYING"


def test_gapless_follow_up_is_preloaded_and_stays_queued_until_it_starts() -> None:
    h = Harness()
    enqueue(h, "a", "b")
    first = h.open_ok()
    h.feed(m.TrackStarted(player=1, serial=first.serial))
    h.ops()
    h.feed(m.NeedNext(player=1, serial=first.serial))
    nxt = h.open_ok()
    assert nxt.preload and nxt.entry.track == "b" and h.titles() == ["b"]
    assert isinstance(h.last_command(), m.Preload)
    h.feed(m.TrackEnded(player=1, serial=first.serial, reason="finished"))
    assert h.opens == []  # waits for the preloaded track instead of opening again
    h.feed(m.TrackStarted(player=1, serial=nxt.serial))
    assert h.ops() == ["SOURCE_STOP", "Q:pop", "SOURCE_START"]
    assert h.titles() == []


def test_crossfade_start_of_next_precedes_stop_of_previous() -> None:
    h = Harness()
    enqueue(h, "a", "b")
    first = h.open_ok()
    h.feed(m.TrackStarted(player=1, serial=first.serial))
    h.feed(m.NeedNext(player=1, serial=first.serial))
    nxt = h.open_ok()
    h.ops()
    h.feed(m.TrackStarted(player=1, serial=nxt.serial))
    h.feed(m.TrackEnded(player=1, serial=first.serial, reason="finished"))
    [stop] = h.of(ev.TrackEnded)
    assert stop.entry.track.title == "a" and stop.reason == "finished"
    assert h.ops() == ["Q:pop", "SOURCE_START", "SOURCE_STOP"]


def test_require_next_source_when_queue_runs_dry() -> None:
    h = Harness()
    enqueue(h, "a")
    first = h.open_ok()
    h.feed(m.TrackStarted(player=1, serial=first.serial))
    h.ops()
    h.feed(m.NeedNext(player=1, serial=first.serial))
    assert h.ops() == ["REQUIRE_NEXT_SOURCE"]
    enqueue(h, "late")  # the bot answers: it becomes the preloaded follow-up
    assert h.opens[0].preload and h.opens[0].entry.track == "late"


def test_skip_reports_skipped_and_drops_n_minus_one() -> None:
    h = Harness()
    enqueue(h, "a", "b", "c", "d")
    first = h.open_ok()
    h.feed(m.TrackStarted(player=1, serial=first.serial))
    h.ops()
    h.player.skip(2)
    assert isinstance(h.last_command(), m.Skip) and h.titles() == ["c", "d"]
    h.feed(m.TrackEnded(player=1, serial=first.serial, reason="finished"))
    [stop] = h.of(ev.TrackEnded)
    assert stop.reason == "skipped"
    assert h.opens[-1].entry.track == "c"


def test_skip_and_seek_without_current_are_conflicts() -> None:
    h = Harness()
    with pytest.raises(Conflict, match="nothing is playing"):
        h.player.skip()
    with pytest.raises(Conflict):
        h.player.seek(3)
    with pytest.raises(Conflict, match="no previous track"):
        h.player.previous()


def test_previous_replays_history_and_requeues_current() -> None:
    h = Harness()
    enqueue(h, "a", "b")
    a = h.open_ok()
    h.feed(m.TrackStarted(player=1, serial=a.serial))
    h.feed(m.TrackEnded(player=1, serial=a.serial, reason="finished"))
    b = h.open_ok()
    h.feed(m.TrackStarted(player=1, serial=b.serial))
    h.player.previous()
    again = h.open_ok()
    assert again.entry.track == "a" and h.titles() == ["b"]
    h.feed(m.TrackStarted(player=1, serial=again.serial))
    h.feed(m.TrackEnded(player=1, serial=b.serial, reason="replaced"))
    assert [e.reason for e in h.of(ev.TrackEnded)] == ["finished", "replaced"]


def test_repeat_track_replays_and_repeat_queue_rotates() -> None:
    h = Harness()
    h.player.set_repeat("track")
    enqueue(h, "a", "b")
    a = h.open_ok()
    h.feed(m.TrackStarted(player=1, serial=a.serial))
    h.feed(m.NeedNext(player=1, serial=a.serial))
    again = h.open_ok()
    assert again.preload and again.entry.track == "a" and h.titles() == ["b"]
    h.player.set_repeat("queue")  # the follow-up changes to the queue head
    assert isinstance(h.commands[-1], m.CancelPreload)
    b = h.open_ok()
    assert b.entry.track == "b"
    h.feed(m.TrackStarted(player=1, serial=b.serial))
    h.feed(m.TrackEnded(player=1, serial=a.serial, reason="finished"))
    assert h.titles() == ["a"]  # the finished track went to the back


@pytest.mark.parametrize("where", ["open", "engine"])
def test_a_follow_up_that_fails_to_preload_is_not_retried_in_a_loop(where: str) -> None:
    # The soak's hot loop: on repeat track, the follow-up is the current entry itself; when
    # its source became unreachable every failed preload asked for the same preload again
    # (service open or engine read-ahead failing at once), burning CPU until the track ended.
    h = Harness()
    h.player.set_repeat("track")
    enqueue(h, "a")
    a = h.open_ok()
    h.feed(m.TrackStarted(player=1, serial=a.serial))
    h.feed(m.NeedNext(player=1, serial=a.serial))
    for _ in range(100):  # fail whatever is asked, as an unreachable source would
        if not h.opens:
            break
        req = h.opens.pop(0)
        assert req.preload and req.entry.track == "a"
        if where == "open":
            h.player.open_failed(req.serial, "connection refused")
        else:
            h.player.opened(req.serial, {"play": req.entry.track})
            h.feed(m.TrackEnded(player=1, serial=req.serial, reason="error", message="refused"))
    failures = h.of(ev.TrackFailed)
    assert len(failures) == 1 and not h.opens, (len(failures), len(h.opens))
    assert h.player.current is not None and h.player.current.serial == a.serial  # still plays
    # At its end the repeat tries the track once more (the source may be back) ...
    h.feed(m.TrackEnded(player=1, serial=a.serial, reason="finished"))
    again = h.opens.pop(0)
    assert not again.preload and again.entry.track == "a"
    h.player.open_failed(again.serial, "connection refused")
    # ... and a second failure leaves the player idle: one more error, no loop.
    assert len(h.of(ev.TrackFailed)) == 2 and not h.opens
    assert h.player.current is None and h.player.phase.value == "idle"


def test_failed_open_reports_and_moves_on() -> None:
    h = Harness()
    enqueue(h, "broken", "ok")
    req = h.opens.pop(0)
    h.player.open_failed(req.serial, "HTTP 404")
    [tb] = h.of(ev.TrackFailed)
    assert tb.message == "HTTP 404" and tb.entry.track.title == "broken"
    assert h.opens[0].entry.track == "ok"


def test_decode_error_ends_with_error_and_traceback() -> None:
    h = Harness()
    enqueue(h, "a", "b")
    a = h.open_ok()
    h.feed(m.TrackStarted(player=1, serial=a.serial))
    h.ops()
    h.feed(m.TrackEnded(player=1, serial=a.serial, reason="error", message="corrupt"))
    assert h.ops()[:2] == ["SOURCE_STOP", "SOURCE_TRACEBACK"]
    assert h.opens[-1].entry.track == "b"


def test_stop_keeps_queue_and_resume_restarts() -> None:
    h = Harness()
    enqueue(h, "a", "b")
    a = h.open_ok()
    h.feed(m.TrackStarted(player=1, serial=a.serial))
    h.player.stop()
    assert isinstance(h.last_command(), m.Stop)
    h.feed(m.TrackEnded(player=1, serial=a.serial, reason="stopped"))
    assert h.opens == [] and h.titles() == ["b"] and h.player.state.name == "STOPPED"
    h.player.resume()
    assert h.opens[0].entry.track == "b"


def test_late_events_of_old_serials_are_ignored() -> None:
    h = Harness()
    enqueue(h, "a")
    a = h.open_ok()
    h.feed(m.TrackStarted(player=1, serial=a.serial))
    h.ops()
    h.feed(m.TrackEnded(player=1, serial=999, reason="finished"))
    h.feed(m.TrackPosition(player=1, serial=999, position_ms=5))
    h.feed(m.NeedNext(player=1, serial=999))
    assert h.ops() == [] and h.player.state.name == "PLAYING"


def test_voice_events_and_position_reach_the_bot() -> None:
    h = Harness()
    h.player.connected = False
    h.feed(
        m.VoiceConnected(player=1, ssrc=5, mode="aead_aes256_gcm_rtpsize", dave_protocol_version=1)
    )
    h.feed(
        m.VoiceClosed(player=1, code=4014, reason="kicked", by_remote=True, will_reconnect=False)
    )
    assert h.ops() == ["VOICE_CONNECTED", "VOICE_CLOSED"]
    assert h.player.state.name == "DISCONNECTED"


def test_need_next_before_the_first_frame_still_preloads() -> None:
    """A track shorter than the preload window asks for its follow-up while it is still being
    opened; the follow-up must be preloaded as soon as it starts (found by the demo)."""
    h = Harness()
    enqueue(h, "short", "next")
    first = h.open_ok()
    h.feed(m.NeedNext(player=1, serial=first.serial))
    assert h.opens == []  # not yet: "short" has not started
    h.feed(m.TrackStarted(player=1, serial=first.serial))
    assert h.opens and h.opens[0].preload and h.opens[0].entry.track == "next"


# --- the table itself ------------------------------------------------------------------------


def test_every_step_names_real_checks_and_effects() -> None:
    from audionode.player.table import TABLE

    for (phase, inp), step in TABLE.items():
        for name in step.checks:
            assert callable(getattr(GuildPlayer, f"_check_{name}", None)), (phase, inp, name)
        for name in step.effects:
            assert callable(getattr(GuildPlayer, f"_do_{name}", None)), (phase, inp, name)


def test_every_command_is_answered_in_every_phase() -> None:
    """A command either has a row or a refusal (409) in each phase: never silently dropped."""
    from audionode.player.table import COMMANDS, REFUSALS, TABLE, Phase

    for phase in Phase:
        for inp in COMMANDS:
            assert (phase, inp) in TABLE or inp in REFUSALS, (phase, inp)


# --- behaviours the table encodes --------------------------------------------------------------


def started(h: Harness, *titles: str) -> OpenRequest:
    enqueue(h, *titles)
    req = h.open_ok()
    h.feed(m.TrackStarted(player=1, serial=req.serial))
    h.ops()
    return req


def test_seek_on_a_live_stream_is_refused_at_once() -> None:
    h = Harness()
    started(h, "live radio")
    sent = len(h.commands)
    with pytest.raises(Conflict) as err:
        h.player.seek(10)
    assert err.value.code == "NOT_SEEKABLE" and "live stream" in err.value.message
    assert len(h.commands) == sent  # nothing reached the engine


def test_seek_past_the_end_is_refused_and_a_good_one_moves_the_position() -> None:

    h = Harness()
    started(h, "a")
    with pytest.raises(Unprocessable, match="past the end of the current track"):
        h.player.seek(61)
    h.player.seek(42.5)
    assert h.last_command() == m.Seek(player=1, position_ms=42500)
    view = h.player.current_view()
    assert view is not None and view.position == 42.5


def test_position_is_extrapolated_while_playing_and_frozen_while_paused() -> None:
    h = Harness()
    a = started(h, "a")
    h.now += 2.5
    view = h.player.current_view()
    assert view is not None and view.position == 2.5 and view.as_of == h.now
    h.player.pause()
    h.now += 10
    view = h.player.current_view()
    assert view is not None and view.position == 2.5 and view.paused
    h.player.resume()
    h.now += 1
    h.feed(m.TrackPosition(player=1, serial=a.serial, position_ms=3600))
    [update] = h.of(ev.PositionChanged)
    assert (update.position, update.as_of, update.state.name) == (3.6, h.now, "PLAYING")


def test_a_held_position_report_is_dated_when_it_was_taken() -> None:
    """A worker holds position reports to write many at once (engine/wire.py): the position
    was the playhead ``held_ms`` before the report arrived, and is extrapolated from there."""
    h = Harness()
    a = started(h, "a")
    h.now += 5
    h.feed(m.TrackPosition(player=1, serial=a.serial, position_ms=4000, held_ms=80))
    [update] = h.of(ev.PositionChanged)
    assert (update.position, update.as_of) == (4.0, h.now - 0.08)
    view = h.player.current_view()
    assert view is not None and view.position == 4.08 and view.as_of == h.now


def test_paused_player_starts_the_next_track_paused() -> None:
    """``paused`` is stored once, in the player: the engine's Play resumes, so a Pause follows."""
    h = Harness()
    h.player.pause()
    enqueue(h, "a")
    req = h.open_ok()
    assert h.commands[-2:] == [
        m.Play(player=1, serial=req.serial, source={"play": "a"}),
        m.Pause(player=1),
    ]
    h.feed(m.TrackStarted(player=1, serial=req.serial))
    assert h.player.state.name == "PAUSED"


def test_stop_while_opening_puts_the_track_back_and_plays_nothing() -> None:
    h = Harness()
    enqueue(h, "a", "b")
    req = h.opens.pop(0)
    h.player.stop()
    assert h.titles() == ["a", "b"] and isinstance(h.last_command(), m.Stop)
    h.player.opened(req.serial, {"play": "a"})  # the late answer is ignored
    assert not any(isinstance(c, m.Play) for c in h.commands)
    assert h.player.phase.name == "STOPPED"
    h.player.resume()
    assert h.opens[-1].entry.track == "a"


def test_refused_filters_are_reported_and_the_previous_ones_stay() -> None:
    from audionode.protocol.filters import parse_filters

    h = Harness()
    good, bad = parse_filters({"volume": 0.5}), parse_filters({"volume": 0.7})
    h.player.set_options(filters=good)
    h.player.set_options(filters=bad)
    assert isinstance(h.last_command(), m.SetFilters)
    h.feed(m.CommandFailed(player=1, command="SetFilters", message="graph failed"))
    assert h.player.filters == good
    [err] = h.of(ev.PlayerError)
    assert (err.command, err.message) == ("SetFilters", "graph failed")


def test_a_full_queue_refuses_and_changes_nothing() -> None:
    h = Harness()
    started(h, "a", "b", "c")
    h.player.queue.max_length = 2
    with pytest.raises(Conflict) as err:
        enqueue(h, "d")
    assert err.value.code == "QUEUE_FULL" and h.titles() == ["b", "c"] and h.events == []


def test_engine_loss_reopens_the_track_where_it_was() -> None:
    h = Harness()
    started(h, "a", "b")
    h.now += 4
    h.player.engine_lost()
    h.player.restore()
    again = h.opens[-1]
    assert again.entry.track == "a" and h.player.phase.name == "OPENING" and h.titles() == ["b"]
    assert again.entry.start_position == 0.0  # the entry keeps its own start (for a replay)
    assert h.commands[-2:] == [
        m.SetVolume(player=1, volume=1.0),
        m.SetCrossfade(player=1, seconds=0.0),
    ]
    shown = h.player.current_view()  # to the bot it is still the current track, where it was
    assert shown is not None and shown.entry.track.id == "a" and shown.position == 4.0
    h.open_ok()
    play = h.last_command()
    assert isinstance(play, m.Play) and play.start_ms == 4000
    h.feed(m.TrackStarted(player=1, serial=play.serial))
    current = h.player.current_view()
    assert current is not None and current.position == 4.0


def test_a_short_preloaded_track_asks_for_its_follow_up_when_it_starts() -> None:
    """NeedNext for a preloaded track that has not started yet (shorter than the preload
    window): its follow-up is preloaded as soon as its first frame is sent."""
    h = Harness()
    a = started(h, "a", "short", "c")
    h.feed(m.NeedNext(player=1, serial=a.serial))
    short = h.open_ok()
    h.feed(m.NeedNext(player=1, serial=short.serial))
    assert h.opens == []
    h.feed(m.TrackStarted(player=1, serial=short.serial))
    assert h.opens and h.opens[0].preload and h.opens[0].entry.track == "c"


def test_a_track_reopened_paused_can_be_seeked_before_it_plays() -> None:
    # A player restored paused (engine loss or node restart) stays OPENING until resumed:
    # its track is shown as current, so a seek moves it instead of answering NOT_PLAYING.
    h = Harness()
    started(h, "a")
    h.now += 4
    h.player.pause()
    h.player.engine_lost()
    h.player.restore()
    h.player.seek(10)  # before the service opened it: its Play will start there
    shown = h.player.current_view()
    assert shown is not None and shown.position == 10.0 and shown.paused
    h.open_ok()
    play = next(c for c in reversed(h.commands) if isinstance(c, m.Play))
    assert play.start_ms == 10000 and h.last_command() == m.Pause(player=1)
    h.player.seek(20)  # after the Play went to the engine: the engine seeks too
    assert h.last_command() == m.Seek(player=1, position_ms=20000)
    with pytest.raises(Unprocessable, match="past the end"):
        h.player.seek(61)
    h.player.resume()
    h.feed(m.TrackStarted(player=1, serial=play.serial))
    current = h.player.current_view()
    assert current is not None and current.position == 20.0


def test_a_fresh_track_being_opened_still_cannot_be_seeked() -> None:
    h = Harness()
    enqueue(h, "a")
    assert h.player.phase.name == "OPENING"
    with pytest.raises(Conflict) as err:
        h.player.seek(5)
    assert err.value.code == "NOT_PLAYING"
