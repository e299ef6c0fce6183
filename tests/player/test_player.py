"""The guild player as a state machine: control calls and engine events in, commands and bot
events out. No engine or socket is involved; the end-to-end test covers those."""

from __future__ import annotations

from typing import Any

import pytest

from audionode.engine import messages as m
from audionode.errors import Conflict
from audionode.player.player import Callbacks, GuildPlayer, OpenRequest
from audionode.player.queue import Entry
from audionode.types import GuildId


class Harness:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.commands: list[m.Command] = []
        self.opens: list[OpenRequest] = []
        cb = Callbacks(
            emit=lambda op, d: self.events.append((op, d)),
            command=self.commands.append,
            open=self.opens.append,
            describe=lambda e: {"title": e.track, "tag": e.tag},
        )
        self.player = GuildPlayer(GuildId(7), 1, cb)
        self.player.connected = True

    def ops(self) -> list[str]:
        out = [op if op != "QUEUE_EVENT" else f"Q:{d['name']}" for op, d in self.events]
        self.events.clear()
        return out

    def open_ok(self) -> OpenRequest:
        req = self.opens.pop(0)
        self.player.track_opened(req.serial, {"play": req.entry.track})
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
    events = list(h.events)
    assert [op for op, _ in events] == ["QUEUE_EVENT", "SOURCE_START", "SOURCE_STOP"]
    assert events[2][1]["source"]["title"] == "a" and events[2][1]["reason"] == "finished"


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
    stop = next(d for op, d in h.events if op == "SOURCE_STOP")
    assert stop["reason"] == "skipped"
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
    stops = [d["reason"] for op, d in h.events if op == "SOURCE_STOP"]
    assert stops == ["finished", "replaced"]


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


def test_failed_open_reports_and_moves_on() -> None:
    h = Harness()
    enqueue(h, "broken", "ok")
    req = h.opens.pop(0)
    h.player.track_failed(req.serial, "HTTP 404")
    tb = next(d for op, d in h.events if op == "SOURCE_TRACEBACK")
    assert tb["traceback"] == "HTTP 404" and tb["source"]["title"] == "broken"
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
