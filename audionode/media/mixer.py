"""Mixer: makes one 20 ms frame at a time from the current track (and the queued one during a
crossfade or a gapless join), on the pipeline thread.

Per frame it either forwards an opus packet untouched (passthrough) or takes 960 samples of
source PCM, runs them through the filter chain, applies the volume (ramped over the frame so a
change never clicks) and encodes them; while nothing changes the samples (volume 1.0, no
filter, no fade) the reader's decoded 20 ms frame goes to libopus as it is
(docs/ARCHITECTURE.md, "The PCM path"). While a layer plays (``media/layers.py``) every frame
is the decoded music (or silence) with the layers mixed over it. Only the already-encoded
frames in the FrameBuffer sit between a control change and the ear, which is why a change is
heard within ~100 ms.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from audionode.media.codec import RATE, OpusEncoder, Pcm
from audionode.media.deck import Deck
from audionode.media.events import (
    EndReason,
    FiltersFailed,
    NextWanted,
    PipelineEvent,
    TrackFailed,
    TrackFinished,
    TrackStarted,
)
from audionode.media.filtergraph import FilterChain, FilterFailure
from audionode.media.frames import FRAME_SAMPLES, Frame
from audionode.media.layers import LayerSet

_MAX_FEEDS = 16
"""Input chunks fed per frame at most, so a filter that swallows audio cannot spin forever."""


class _Fifo:
    """Filtered PCM waiting to be encoded, each chunk tagged with (track, position)."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[int, int, Pcm]] = deque()
        self.size = 0

    def holds(self, serial: int) -> bool:
        return any(chunk[0] == serial for chunk in self._chunks)

    def push(self, serial: int, pos: int, pcm: Pcm) -> None:
        if len(pcm):
            self._chunks.append((serial, pos, pcm))
            self.size += len(pcm)

    def take(self, n: int) -> tuple[int, int, Pcm]:
        """``n`` samples (caller checks :attr:`size`); tagged with the first sample's origin."""
        serial, pos, _ = self._chunks[0]
        parts = []
        need = n
        while need:
            s, p, pcm = self._chunks.popleft()
            if len(pcm) > need:
                self._chunks.appendleft((s, p + need, pcm[need:]))
                pcm = pcm[:need]
            parts.append(pcm)
            need -= len(pcm)
        self.size -= n
        return serial, pos, parts[0] if len(parts) == 1 else np.concatenate(parts)

    def clear(self) -> None:
        self._chunks.clear()
        self.size = 0


@dataclass(slots=True)
class _Fade:
    total: int
    done: int = 0


class Mixer:
    """The frame maker. Every method runs on the pipeline thread."""

    def __init__(
        self, encoder: OpusEncoder, emit: Callable[[PipelineEvent], None], preload: float
    ) -> None:
        self.encoder = encoder
        self.emit = emit
        self.preload = int(preload * RATE)
        self.current: Deck | None = None
        self.next: Deck | None = None
        self.chain: FilterChain | None = None
        self.crossfade = 0
        self.gain = 1.0
        self.target = 1.0
        self._out = _Fifo()
        self._fade: _Fade | None = None
        self._ending = False
        """The last track just ended: its tail is still to be flushed out."""
        self._last_fed = (0, 0)
        self._finishing: list[TrackFinished] = []
        self.layers = LayerSet(emit)
        """Sources mixed over the music (sound effects, a VDP peer's voice)."""

    # -- control (called by the pipeline's command handlers) -------------------------------

    def set_current(self, deck: Deck | None, reason: EndReason) -> None:
        """Replace the current track now (the old one ends with ``reason``)."""
        self._end_current(reason)
        self.current = deck
        if deck is not None:
            self._ending = False

    def set_next(self, deck: Deck | None) -> None:
        if self.next is not None:
            self.next.close()
        self.next = deck
        self._fade = None

    def skip(self) -> None:
        nxt, self.next = self.next, None
        self.set_current(nxt, "skipped")

    def fail_current(self, message: str) -> None:
        """Report the current track as failed with ``message`` and move on."""
        cur, self.current = self.current, None
        self._fade = None
        if cur is not None:
            cur.close()
            self.emit(TrackFailed(cur.serial, message, cur.position_ms))
        nxt, self.next = self.next, None
        self.current = nxt

    def seek(self, ms: int) -> None:
        if self.current is not None:
            self.current.seek(ms)
            self.current.next_wanted = False
        self._fade = None
        self.reset_output()

    def reset_output(self) -> None:
        """Forget filtered audio not yet encoded (after a replace or a seek)."""
        self._out.clear()
        self._report_finished()

    def close(self) -> None:
        for deck in (self.current, self.next):
            if deck is not None:
                deck.close()
        self.current = self.next = None
        self.layers.close()

    # -- per loop --------------------------------------------------------------------------

    def poll(self) -> None:
        """Report opened and failed tracks. A queued track that fails is dropped; the current
        one first plays what was read before the failure, then the queued one follows."""
        for deck in (self.current, self.next):
            if deck is not None and not deck.announced and deck.reader.info is not None:
                info = deck.reader.info
                deck.announced = True
                self.emit(TrackStarted(deck.serial, info.duration_ms, info.is_live, info.packets))
        if self.next is not None and self.next.reader.error is not None:
            failed, self.next = self.next, None
            self._fail(failed)
        cur = self.current
        if cur is not None and cur.reader.error is not None and not cur.has_data:
            self._promote()  # what was read before the failure has been played
        self.layers.poll()

    def produce(self, music: bool = True) -> Frame | None:
        """The next frame, or None when there is nothing to play or the input is not ready.
        ``music=False`` (paused) still makes frames of the layers, if any."""
        if self.layers:
            return self._layered_frame(music)
        while (cur := self.current) is not None and cur.reader.info is not None:
            self._want_next(cur)
            if not self._passthrough_ok(cur):
                return self._decoded_frame()
            self._out.clear()  # < 1 frame of filtered tail left from decoding; drop it
            packet = cur.take_packet()
            if packet is not None:
                return Frame(packet.data, cur.serial, packet.pos * 1000 // RATE)
            if not cur.drained:
                # not ready yet, or a packet that is not 20 ms long: decode it
                return self._decoded_frame() if cur.has_data else None
            self._promote()  # the next track may be passthrough too: no decoded join frame
        # nothing playing: frames left from the end of the last track (filter tail) go out
        return self._encode_out() if self._out.size >= FRAME_SAMPLES else None

    def lane_ok(self, cur: Deck) -> bool:
        """True when ``cur``'s next frames may leave by the passthrough lane
        (``media/lane.py``): what :meth:`produce` would forward untouched, with no layer
        sounding and no finished track's event waiting for its last frame."""
        if self.layers or self._finishing or cur.reader.info is None:
            return False
        self._want_next(cur)
        if not self._passthrough_ok(cur):
            return False
        self._out.clear()  # as produce() does before a passthrough frame
        return True

    # -- internals -------------------------------------------------------------------------

    def _passthrough_ok(self, cur: Deck) -> bool:
        return (
            cur.packets
            and self.chain is None
            and self.gain == 1.0
            and self.target == 1.0
            and self._fade is None
            and not self._fade_due(cur)
            and self._out.size < FRAME_SAMPLES
        )

    def _decoded_frame(self) -> Frame | None:
        cur = self.current
        if cur is not None and self._untouched(cur):
            # Nothing changes these samples: the decoded frame goes to the encoder as it is.
            whole = cur.take_frame()
            if whole is not None:
                pos, block = whole
                self._last_fed = (cur.serial, pos + FRAME_SAMPLES)
                frame = Frame(self.encoder.encode_frame(block), cur.serial, pos * 1000 // RATE)
                self._report_finished()
                return frame
        if not self._out.size and self.chain is None:
            # A whole block that only needs the volume (or is a fade's mix) is encoded from
            # where it is, without queueing in ``_out``. Anything else (underrun, the end, a
            # block cut short) goes the long way.
            got = self._take_input(FRAME_SAMPLES)
            if got is not None:
                serial, pos, pcm = got
                self._last_fed = (serial, pos + len(pcm))
                if len(pcm) == FRAME_SAMPLES:
                    return self._encode(serial, pos, pcm)
                self._out.push(serial, pos, pcm)
        return self._encode_out() if self._fill_out() else None

    def _untouched(self, cur: Deck) -> bool:
        """The next 960 samples of ``cur`` go out as decoded: no filter, unity volume, no
        fade now or starting within them, nothing waiting in ``_out``."""
        if (
            self.chain is not None
            or self.gain != 1.0
            or self.target != 1.0
            or self._fade is not None
            or self._out.size
        ):
            return False
        if self.crossfade <= 0 or self.next is None:
            return True
        return not self._fade_due(cur) and self._until_fade(cur, FRAME_SAMPLES) == FRAME_SAMPLES

    def _fill_out(self) -> bool:
        """Filtered music until a frame's worth waits in ``_out``; False if it is not ready."""
        feeds = 0
        while self._out.size < FRAME_SAMPLES:
            got = self._take_input(FRAME_SAMPLES)
            feeds += 1
            if got is None and self.current is None and self._ending:
                self._flush_tail()
                continue
            if got is None or feeds > _MAX_FEEDS:
                return False
            serial, pos, pcm = got
            self._last_fed = (serial, pos + len(pcm))
            self._out.push(serial, pos, pcm if self.chain is None else self._filter(pcm))
        return True

    def _layered_frame(self, music: bool) -> Frame | None:
        """The music's next frame (silence when it has none ready, is paused or stopped) with
        the layers over it; None when neither has sound."""
        got = None
        if music:
            cur = self.current
            if cur is not None and cur.reader.info is not None:
                self._want_next(cur)
            if self._fill_out():
                got = self._out.take(FRAME_SAMPLES)
        over, duck = self.layers.mix(FRAME_SAMPLES)
        if got is None:
            if over is None:
                return None
            serial, pos = self._last_fed
            pcm = over
        else:
            serial, pos, pcm = got
            pcm = self._apply_gain(pcm)
            if duck is not None:
                pcm = pcm * duck
            if over is not None:
                pcm = pcm + over
        frame = Frame(self.encoder.encode(pcm), serial, pos * 1000 // RATE)
        self._report_finished()
        return frame

    def _filter(self, pcm: Pcm) -> Pcm:
        assert self.chain is not None
        try:
            return self.chain.process(pcm)
        except FilterFailure as e:  # the filters go, this player's audio goes on
            self.chain = None
            self.emit(FiltersFailed(str(e)))
            return pcm

    def _encode_out(self) -> Frame:
        return self._encode(*self._out.take(FRAME_SAMPLES))

    def _encode(self, serial: int, pos: int, pcm: Pcm) -> Frame:
        frame = Frame(self.encoder.encode(pcm, self._next_gain()), serial, pos * 1000 // RATE)
        self._report_finished()
        return frame

    def _flush_tail(self) -> None:
        """The last track ended with nothing after it: let the filters' delayed samples out
        and pad the final partial frame with silence, so no audio is cut off."""
        self._ending = False
        serial, pos = self._last_fed
        if self.chain is not None:
            self._out.push(serial, pos, self.chain.flush())
            self.chain = FilterChain(self.chain.stages)  # a flushed graph takes no more input
        if self._out.size % FRAME_SAMPLES:
            pad = FRAME_SAMPLES - self._out.size % FRAME_SAMPLES
            self._out.push(serial, pos, np.zeros((pad, 2), dtype=np.float32))

    def _next_gain(self) -> float | Pcm:
        """The volume for the next frame: a number, or a ramp of shape (960, 1) from the
        last volume to the new one (so a change never clicks); the encoder applies it."""
        if self.gain == self.target:
            return self.gain
        ramp: Pcm = np.linspace(self.gain, self.target, FRAME_SAMPLES, dtype=np.float32)[:, None]
        self.gain = self.target
        return ramp

    def _apply_gain(self, pcm: Pcm) -> Pcm:
        gain = self._next_gain()
        if not isinstance(gain, np.ndarray) and gain == 1.0:
            return pcm
        out: Pcm = pcm * gain
        return out

    def _take_input(self, n: int) -> tuple[int, int, Pcm] | None:
        """Up to ``n`` source samples as (track, position, pcm); joins tracks gaplessly."""
        while (cur := self.current) is not None:
            if self._fade is None and self._fade_due(cur):
                self._fade = _Fade(total=max(1, min(cur.remaining() or 1, self.crossfade)))
            if self._fade is not None:
                return self._take_fading(cur, n)
            got = cur.take(self._until_fade(cur, n))
            if got is not None:
                return cur.serial, got[0], got[1]
            if not cur.drained:
                return None  # underrun: the reader is behind
            self._promote()
        return None

    def _fade_due(self, cur: Deck) -> bool:
        nxt = self.next
        if self.crossfade <= 0 or nxt is None or not nxt.has_data or cur.is_live:
            return False
        remaining = cur.remaining()
        return remaining is not None and remaining <= self.crossfade

    def _until_fade(self, cur: Deck, n: int) -> int:
        """``n``, or fewer so that a crossfade starts exactly ``crossfade`` before the end."""
        if self.crossfade <= 0 or self.next is None:
            return n
        remaining = cur.remaining()
        if remaining is None or remaining <= self.crossfade:
            return n
        return min(n, remaining - self.crossfade)

    def _take_fading(self, cur: Deck, n: int) -> tuple[int, int, Pcm] | None:
        nxt = self.next
        fade = self._fade
        assert nxt is not None and fade is not None
        a = cur.take(min(n, fade.total - fade.done))
        if a is None:
            if cur.drained:
                self._promote()
                return self._take_input(n)
            return None
        b = nxt.take(len(a[1]))
        if b is None:
            cur.unread(*a)
            return None
        m = len(b[1])
        if m < len(a[1]):
            cur.unread(a[0] + m, a[1][m:])
        t = (fade.done + np.arange(m, dtype=np.float32)) / fade.total
        # Equal-power curves: the loudness of uncorrelated music stays even across the fade.
        mixed: Pcm = a[1][:m] * np.cos(t * (math.pi / 2))[:, None]
        mixed += b[1] * np.sin(t * (math.pi / 2))[:, None]
        fade.done += m
        if fade.done >= fade.total:
            self._promote()
        return nxt.serial, b[0], mixed

    def _promote(self) -> None:
        """The current track is over (or failed): the queued one (if any) takes its place."""
        cur = self.current
        if cur is not None and cur.reader.error is not None:
            self.current = None
            self._fail(cur)
        nxt, self.next = self.next, None
        self._fade = None
        self._ending = nxt is None
        self.set_current(nxt, "finished")

    def _end_current(self, reason: EndReason) -> None:
        cur, self.current = self.current, None
        self._fade = None
        if cur is None:
            return
        cur.close()
        event = TrackFinished(cur.serial, reason, cur.position_ms)
        if reason == "finished" and self._out.holds(cur.serial):
            self._finishing.append(event)  # reported once its last samples are encoded
        else:
            self.emit(event)

    def _report_finished(self) -> None:
        while self._finishing and not self._out.holds(self._finishing[0].track):
            self.emit(self._finishing.pop(0))

    def _fail(self, deck: Deck) -> None:
        deck.close()
        self.emit(TrackFailed(deck.serial, deck.reader.error or "failed", deck.position_ms))

    def _want_next(self, cur: Deck) -> None:
        if self.next is not None or cur.next_wanted or cur.is_live:
            return
        remaining = cur.remaining()
        if remaining is not None and remaining <= self.preload + self.crossfade:
            cur.next_wanted = True
            self.emit(NextWanted(cur.serial, remaining * 1000 // RATE))
