"""One voice client's recording (issue 15 item 3): per-user and mixed Ogg/Opus files.

The receive thread (``engine/receive.py``) hands every member's decoded 20 ms to
:meth:`Recording.add` and closes each tick with :meth:`Recording.tick`, which only appends the
tick to a bounded queue: encoding and writing happen on the recording's own writer thread, so
neither the receive thread nor the real-time sender ever waits for the disk.

Files, in a folder named by the node (``<UTC time>-<random hex>``, never from a request):
``mixed.ogg`` (every member heard, summed, from the start of the recording) and
``user-<user id>.ogg`` per member, from the tick that member was first heard (its ``start``,
seconds after the recording's start, is reported), with silence while the member is silent so
each file keeps the recording's clock. Bounds: ``recording.max_seconds`` and
``recording.max_bytes`` stop the recording by themselves; a writer more than
:data:`QUEUE_TICKS` ticks behind stops it (``overrun``) rather than let memory grow.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Final

import numpy as np

from audionode.config import RecordingConfig
from audionode.engine import messages as msg
from audionode.engine.opusdec import FRAME, Pcm
from audionode.media.recordfile import OggOpusFile

log = logging.getLogger(__name__)

QUEUE_TICKS: Final = 500
"""Ticks (10 s of audio) waiting for the writer at most."""
MIXED: Final = "mixed.ogg"
TICK_SECONDS: Final = 0.020
Tick = dict[int, Pcm]


class Recording:
    """``Recording(...)``, :meth:`start`; then :meth:`add`/:meth:`tick` from the receive
    thread until :attr:`done`, or :meth:`stop`. Reports ``RecordingStarted`` once its folder
    and mixed file exist and ``RecordingStopped`` (with every file) at the end, through
    ``report`` called on the writer thread."""

    def __init__(
        self,
        player: int,
        recording: str,
        directory: str,
        cfg: RecordingConfig,
        report: Callable[[msg.Event], None],
    ) -> None:
        self.player = player
        self.recording = recording
        self.directory = directory
        self.cfg = cfg
        self._report = report
        self._queue: queue.Queue[Tick | str] = queue.Queue(maxsize=QUEUE_TICKS)
        self._tick: Tick = {}
        self._files: dict[int | None, tuple[OggOpusFile, int]] = {}
        """user id (None: mixed) -> (file, tick it started at)."""
        self._ticks = 0
        self.done = False
        """Set once the recording stopped (by request or by a bound): feed it no more."""
        self._thread = threading.Thread(target=self._run, name=f"rec-{recording}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait (at shutdown) for the writer to finish its files."""
        self._thread.join(timeout)

    # --- receive thread ---------------------------------------------------------------------

    def add(self, user_id: int, pcm: Pcm) -> None:
        """One member's audio of this tick."""
        self._tick[user_id] = pcm

    def tick(self) -> None:
        """Close this tick: hand it to the writer (never waits)."""
        tick, self._tick = self._tick, {}
        if self.done:
            return
        try:
            self._queue.put_nowait(tick)
        except queue.Full:
            self.stop("overrun")

    def stop(self, reason: str) -> None:
        """End the recording (any thread): the writer finishes the queued ticks first."""
        if self.done:
            return
        self.done = True
        while True:
            try:
                self._queue.put_nowait(reason)
                return
            except queue.Full:  # overrun: make room for the end marker
                self._queue.get_nowait()

    # --- writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        reason, message = "stopped", None
        try:
            os.makedirs(self.directory, mode=0o750)
            self._open(None, MIXED)
            self._report(
                msg.RecordingStarted(
                    player=self.player, recording=self.recording, directory=self.directory
                )
            )
            reason = self._write_all()
        except Exception as e:  # the disk failed: say so, keep what was written
            log.warning("recording %s failed: %s", self.recording, e)
            self.done = True
            reason, message = "error", str(e)
        self._report(
            msg.RecordingStopped(
                player=self.player,
                recording=self.recording,
                reason=reason,
                message=message,
                files=self._close_all(),
            )
        )

    def _write_all(self) -> str:
        max_ticks = int(self.cfg.max_seconds / TICK_SECONDS)
        while True:
            item = self._queue.get()
            if isinstance(item, str):
                return item
            self._write(item)
            self._ticks += 1
            written = sum(f.bytes for f, _ in self._files.values())
            bound = "max_seconds" if self._ticks >= max_ticks else None
            bound = "max_bytes" if written >= self.cfg.max_bytes else bound
            if bound is not None:
                self.done = True
                return bound

    def _write(self, tick: Tick) -> None:
        mixed = np.zeros((FRAME, 2), dtype=np.float32)
        for user_id, pcm in tick.items():
            if user_id not in self._files:
                self._open(user_id, f"user-{user_id:d}.ogg")
            n = min(len(pcm), FRAME)
            mixed[:n] += pcm[:n]
        for who, (file, _) in self._files.items():
            if who is None:
                file.write(mixed)
            else:
                heard = tick.get(who)
                file.write(heard if heard is not None else np.zeros((FRAME, 2), np.float32))

    def _open(self, user_id: int | None, name: str) -> None:
        path = os.path.join(self.directory, name)
        self._files[user_id] = (OggOpusFile(path, self.cfg.bitrate), self._ticks)

    def _close_all(self) -> list[msg.RecordedFile]:
        out = []
        for user_id, (file, first) in self._files.items():
            try:
                file.close()
            except Exception as e:  # a file that cannot be finished is still reported
                log.warning("recording %s: closing %s failed: %s", self.recording, file.path, e)
            out.append(
                msg.RecordedFile(
                    name=os.path.basename(file.path),
                    user_id=user_id,
                    start=round(first * TICK_SECONDS, 3),
                    seconds=round(file.samples / 48000, 3),
                    bytes=file.bytes,
                )
            )
        return out
