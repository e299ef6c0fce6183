"""Deck: the pipeline-thread side of one track — its reader, its position, and the decoding of
opus packets when passthrough is not possible.
"""

from __future__ import annotations

import av
import numpy as np

from audionode.media.codec import RATE, OpusDecoder, Pcm
from audionode.media.frames import FRAME_SAMPLES
from audionode.media.reader import Packet, TrackReader


class Deck:
    """One track as the mixer sees it. Used only on the pipeline thread."""

    def __init__(self, reader: TrackReader, end_ms: int | None) -> None:
        self.reader = reader
        self.serial = reader.serial
        self.pos = 0
        """Position (48 kHz samples) of the next sample this deck will give."""
        self.announced = False
        """TrackStarted was reported."""
        self.next_wanted = False
        """NextWanted was reported."""
        self._end = None if end_ms is None else end_ms * RATE // 1000
        self._pending: tuple[int, Pcm] | None = None
        self._decoder: OpusDecoder | None = None
        self._decoder_stale = False

    @property
    def position_ms(self) -> int:
        return self.pos * 1000 // RATE

    @property
    def packets(self) -> bool:
        return self.reader.info is not None and self.reader.info.packets

    @property
    def is_live(self) -> bool:
        return self.reader.info is not None and self.reader.info.is_live

    @property
    def has_data(self) -> bool:
        return self._pending is not None or self.reader.buffered() > 0

    @property
    def drained(self) -> bool:
        return self._pending is None and self.reader.drained

    def remaining(self) -> int | None:
        """Samples left in the track, when known (end position, duration or end reached)."""
        pending = 0 if self._pending is None else len(self._pending[1])
        if self.reader.eof:
            return pending + self.reader.buffered()
        info = self.reader.info
        end = self._end
        if end is None and info is not None and not info.is_live and info.duration_ms:
            end = info.duration_ms * RATE // 1000
        return None if end is None else max(0, end - self.pos)

    def take_packet(self) -> Packet | None:
        """The next packet to forward as is, if it is one whole 20 ms frame."""
        if self._pending is not None:
            return None
        packet = self.reader.take_packet(960)
        if packet is None:
            return None
        self._decoder_stale = True
        self.pos = packet.pos + packet.samples
        return packet

    def lane_start(self) -> bool:
        """Whether the reader's packets may be taken by the passthrough lane from now on (no
        decoded samples wait here); the decoder then restarts clean when decoding resumes."""
        if self._pending is not None:
            return False
        self._decoder_stale = True
        return True

    def take(self, limit: int) -> tuple[int, Pcm] | None:
        """Up to ``limit`` samples as ``(position, pcm)``, or None if nothing is ready."""
        if self._pending is None:
            self._pending = self._read()
            if self._pending is None:
                return None
        pos, pcm = self._pending
        if len(pcm) > limit:
            self._pending = (pos + limit, pcm[limit:])
            pcm = pcm[:limit]
        else:
            self._pending = None
        self.pos = pos + len(pcm)
        return pos, pcm

    def take_frame(self) -> tuple[int, av.AudioFrame] | None:
        """The next 20 ms as ``(position, libav frame)`` when the reader has it as one whole
        decoded frame (pcm mode, nothing pending); else None: use :meth:`take`."""
        if self._pending is not None:
            return None
        got = self.reader.take_frame()
        if got is not None:
            self.pos = got[0] + FRAME_SAMPLES
        return got

    def unread(self, pos: int, pcm: Pcm) -> None:
        """Put samples taken with :meth:`take` back in front."""
        if self._pending is not None:
            pcm = np.concatenate([pcm, self._pending[1]])
        self._pending = (pos, pcm)
        self.pos = pos

    def seek(self, ms: int) -> None:
        self._pending = None
        self.pos = max(0, ms) * RATE // 1000
        self.reader.seek(ms)

    def close(self) -> None:
        self.reader.close()

    def _read(self) -> tuple[int, Pcm] | None:
        if not self.packets:
            return self.reader.take_pcm(RATE)
        packet = self.reader.take_packet()
        if packet is None:
            return None
        if self._decoder is None:
            self._decoder = OpusDecoder()
        elif self._decoder_stale:
            self._decoder.reset()
        self._decoder_stale = False
        pcm = self._decoder.decode(packet.data)
        return (packet.pos, pcm) if len(pcm) else None
