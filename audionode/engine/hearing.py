"""What the engine does with what it hears: recordings and VDP channels (issue 15 items 3, 5).

:class:`Hearing` is the receive path's consumer (``engine/receive.py`` calls
:meth:`Hearing.audio` per member and :meth:`Hearing.tick` per 20 ms tick, on the receive
thread) and the handler of the recording and VDP engine commands (on the event loop). It hands
each tick's audio to the player's recording (``engine/recording.py``) and VDP channels
(``engine/vdp.py``); both do their slow work elsewhere (the recording's writer thread), so a
tick costs the receive thread a few dict operations plus the VDP encodes.

The loop changes what the thread sees by replacing :attr:`Hearing._recordings` (a dict the
thread only reads); the thread and the writers report back through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from audionode.config import Config
from audionode.engine import messages as msg
from audionode.engine.opusdec import Pcm
from audionode.engine.receive import ReceivePath
from audionode.engine.recording import Recording
from audionode.engine.vdp import StartFeed, StopFeed, VdpBridge


class Hearing:
    """Built by the engine with its receive path (None when ``voice.receive`` is off: every
    command here is then refused)."""

    def __init__(
        self,
        config: Config,
        emit: Callable[[msg.Event], None],
        receive: ReceivePath | None,
        start_feed: StartFeed,
        stop_feed: StopFeed,
    ) -> None:
        self.config = config
        self._emit = emit
        self.receive = receive
        self.vdp = VdpBridge(config.vdp, emit, start_feed, stop_feed)
        self._recordings: dict[int, Recording] = {}
        self._heard: dict[int, list[Pcm]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        if receive is not None:
            receive.on_audio = self.audio
            receive.on_tick = self.tick
            receive.wants = self.wants

    def handlers(self) -> dict[type[Any], Callable[[Any], object]]:
        """The engine commands handled here."""
        return {
            msg.StartRecording: self._start_recording,
            msg.StopRecording: self._stop_recording,
            msg.OpenVdp: self._open_vdp,
            msg.SetVdpPeer: lambda c: self.vdp.set_peer(c.player, c.room_id, c.host, c.port),
            msg.CloseVdp: self._close_vdp,
        }

    def forget(self, player: int) -> None:
        """The player's connection is gone: its recording and channels end (``disconnected``)."""
        rec = self._recordings.get(player)
        if rec is not None:
            rec.stop("disconnected")
        self.vdp.forget(player)

    def close(self) -> None:
        """At shutdown, after the receive thread stopped: recordings finish their files (up to
        a few seconds), channels close their sockets."""
        recordings = list(self._recordings.values())
        for player in {*self._recordings, *self.vdp.players}:
            self.forget(player)
        for rec in recordings:
            rec.join(2.0)
        self.vdp.release()

    # --- commands (the event loop) --------------------------------------------------------------

    def _need_receive(self) -> None:
        if self.receive is None:
            raise RuntimeError("voice.receive is off in this engine")

    def _start_recording(self, cmd: msg.StartRecording) -> None:
        self._need_receive()
        root = self.config.recording.path
        if root is None:
            raise RuntimeError("recording.path is not set")
        if cmd.player in self._recordings:
            raise RuntimeError("this voice client is already recording")
        self._loop = asyncio.get_running_loop()
        rec = Recording(
            cmd.player,
            cmd.recording,
            os.path.join(root, cmd.name),
            self.config.recording,
            self._from_writer,
        )
        self._recordings = {**self._recordings, cmd.player: rec}
        rec.start()

    def _stop_recording(self, cmd: msg.StopRecording) -> None:
        rec = self._recordings.get(cmd.player)
        if rec is not None and rec.recording == cmd.recording:
            rec.stop("stopped")

    def _from_writer(self, event: msg.Event) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._recording_event, event)

    def _recording_event(self, event: msg.Event) -> None:
        if isinstance(event, msg.RecordingStopped):
            rec = self._recordings.get(event.player)
            if rec is not None and rec.recording == event.recording:
                self._recordings = {p: r for p, r in self._recordings.items() if r is not rec}
        self._emit(event)

    def _open_vdp(self, cmd: msg.OpenVdp) -> None:
        self._need_receive()
        self.vdp.open(cmd.player, cmd.room_id)

    def _close_vdp(self, cmd: msg.CloseVdp) -> None:
        self.vdp.close(cmd.player, cmd.room_id, "closed")

    # --- the receive thread ---------------------------------------------------------------------

    def wants(self, player: int) -> bool:
        """Whether the player's members must be decoded: it records, or bridges a room."""
        return player in self._recordings or player in self.vdp.players

    def audio(self, player: int, user_id: int, pcm: Pcm) -> None:
        """One member's decoded 20 ms (``ReceivePath.on_audio``)."""
        rec = self._recordings.get(player)
        if rec is not None:
            rec.add(user_id, pcm)
        if player in self.vdp.players:
            self._heard.setdefault(player, []).append(pcm)

    def tick(self) -> None:
        """The end of a receive tick (``ReceivePath.on_tick``)."""
        for rec in self._recordings.values():
            rec.tick()
        heard, self._heard = self._heard, {}
        self.vdp.tick(heard)

    def stats(self) -> dict[str, int]:
        """VDP counters, recordings open, and the receive path's frames (``/status``)."""
        played = concealed = failed = 0
        if self.receive is not None:
            for player in self.receive.players():
                for user in self.receive.stats(player):
                    played += user.played
                    concealed += user.concealed
                    failed += user.failed
        return {
            **self.vdp.stats(),
            "recordings": len(self._recordings),
            "receive_played": played,
            "receive_concealed": concealed,
            "receive_failed": failed,
        }

