"""Layers: sources mixed over a guild's music, each with its own volume (issue 15 item 4).

A layer is either a track (a sound effect, speech: any :class:`Playable`, read ahead like a
track by a :class:`TrackReader`) or a live feed of PCM pushed from another thread (a VDP peer's
voice, ``engine/vdp.py``). The mixer asks :class:`LayerSet` for 960 samples per
frame while any layer is active; frames are then always decoded and re-encoded (no opus
passthrough while a layer plays: docs/API.md, "Layers").

Ducking: a layer with ``duck`` set lowers the music to that gain while the layer has sound,
ramped over a few frames in both directions so it never clicks.

Everything here runs on the producer thread, except :meth:`FeedLayer.push` (any thread).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

import numpy as np

from audionode.media.codec import Pcm
from audionode.media.deck import Deck
from audionode.media.events import LayerEnded, LayerStarted, PipelineEvent
from audionode.media.reader import TrackReader

DUCK_STEP: Final = 0.2
"""Largest change of the music's duck gain per 20 ms frame (a full duck takes ~100 ms)."""
FEED_FRAMES: Final = 10
"""20 ms blocks a live feed keeps at most (200 ms): older ones are dropped, bounding latency."""
FEED_START: Final = 2
"""Blocks a live feed waits for before it plays (again): 40 ms absorb the arrival jitter."""


class Layer:
    """One source over the music. ``duck``: the music's gain while this layer sounds (None:
    no ducking)."""

    def __init__(self, layer_id: int, volume: float, duck: float | None) -> None:
        self.id = layer_id
        self.volume = volume
        self.duck = duck
        self.started = False

    def ready(self) -> bool:
        """True once it can give samples (it is then announced and mixed)."""
        raise NotImplementedError

    def take(self, n: int) -> Pcm | None:
        """``n`` samples, or None when none are ready this frame."""
        raise NotImplementedError

    def ended(self) -> tuple[str, str | None] | None:
        """``(reason, message)`` once it ended by itself (``finished`` or ``error``)."""
        return None

    def close(self) -> None:
        pass


class TrackLayer(Layer):
    """A track played once over the music."""

    def __init__(
        self, layer_id: int, reader: TrackReader, volume: float, duck: float | None
    ) -> None:
        super().__init__(layer_id, volume, duck)
        self.deck = Deck(reader, None)

    def ready(self) -> bool:
        return self.deck.reader.info is not None and self.deck.has_data

    def take(self, n: int) -> Pcm | None:
        parts: list[Pcm] = []
        need = n
        pos = self.deck.pos
        while need:
            got = self.deck.take(need)
            if got is None:
                break
            parts.append(got[1])
            need -= len(got[1])
        if not parts:
            return None
        pcm = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if need and not self.deck.drained:
            self.deck.unread(pos, pcm)  # an underrun: the whole frame next time
            return None
        if need:  # the track's last partial frame
            pcm = np.concatenate([pcm, np.zeros((need, 2), dtype=np.float32)])
        return pcm

    def ended(self) -> tuple[str, str | None] | None:
        reader = self.deck.reader
        if reader.error is not None and not self.deck.has_data:
            return "error", reader.error
        if self.deck.drained:
            return "finished", None
        return None

    def close(self) -> None:
        self.deck.close()


class FeedLayer(Layer):
    """PCM pushed as it arrives (decoded by the feeder: a VDP peer's opus is decoded with loss
    concealment on the receive thread), played as live audio: a short start buffer, and the
    oldest blocks dropped beyond :data:`FEED_FRAMES`."""

    def __init__(
        self,
        layer_id: int,
        volume: float,
        duck: float | None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(layer_id, volume, duck)
        self._blocks: deque[Pcm] = deque(maxlen=FEED_FRAMES)
        self._wake = wake
        self._pcm: Pcm = np.zeros((0, 2), dtype=np.float32)
        self._playing = False
        self.overflowed = 0
        """Blocks dropped because the feed ran :data:`FEED_FRAMES` ahead of the music."""

    def push(self, pcm: Pcm) -> None:
        """One block (48 kHz stereo float32, 20 ms as a rule) from the feeder's thread; never
        blocks."""
        if len(self._blocks) == FEED_FRAMES:
            self.overflowed += 1
        self._blocks.append(pcm)
        if self._wake is not None and len(self._blocks) >= FEED_START:
            self._wake()

    def ready(self) -> bool:
        return True  # live: announced at once, silent until audio comes

    def take(self, n: int) -> Pcm | None:
        if not self._playing:
            if len(self._blocks) < FEED_START:
                return None
            self._playing = True
        while len(self._pcm) < n:
            try:
                block = self._blocks.popleft()
            except IndexError:
                self._playing = False  # ran dry: buffer again before going on
                return None
            self._pcm = np.concatenate([self._pcm, block]) if len(self._pcm) else block
        pcm, self._pcm = self._pcm[:n], self._pcm[n:]
        return pcm


class LayerSet:
    """The layers of one pipeline and the music's duck gain."""

    def __init__(self, emit: Callable[[PipelineEvent], None]) -> None:
        self.emit = emit
        self._layers: dict[int, Layer] = {}
        self._duck = 1.0

    def __bool__(self) -> bool:
        """Active: a layer is there, or the music is still coming back up from a duck."""
        return bool(self._layers) or self._duck < 1.0

    def __len__(self) -> int:
        return len(self._layers)

    def add(self, layer: Layer) -> None:
        old = self._layers.pop(layer.id, None)
        if old is not None:
            self._end(old, "replaced", None)
        self._layers[layer.id] = layer

    def remove(self, layer_id: int, reason: str = "stopped") -> None:
        layer = self._layers.pop(layer_id, None)
        if layer is not None:
            self._end(layer, reason, None)

    def poll(self) -> None:
        """Announce layers that became ready, end those that ended by themselves."""
        for layer in list(self._layers.values()):
            if not layer.started and layer.ready():
                layer.started = True
                self.emit(LayerStarted(layer.id))
            done = layer.ended()
            if done is not None:
                del self._layers[layer.id]
                self._end(layer, *done)

    def mix(self, n: int) -> tuple[Pcm | None, Pcm | None]:
        """``(layers' sum, music gain ramp)`` for the next ``n`` samples: the sum is None when
        no layer has sound now, the ramp None when the music is not ducked."""
        total: Pcm | None = None
        target = 1.0
        for layer in list(self._layers.values()):
            if not layer.started:
                continue
            try:
                pcm = layer.take(n)
            except Exception as e:  # a broken layer ends; the music goes on
                del self._layers[layer.id]
                self._end(layer, "error", f"layer failed: {e}")
                continue
            if pcm is None:
                continue
            scaled = pcm * np.float32(layer.volume)
            total = scaled if total is None else total + scaled
            if layer.duck is not None:
                target = min(target, layer.duck)
        return total, self._ramp(target, n)

    def _ramp(self, target: float, n: int) -> Pcm | None:
        start = self._duck
        if start == target == 1.0:
            return None
        end = min(start + DUCK_STEP, target) if target > start else max(start - DUCK_STEP, target)
        self._duck = end
        ramp: Pcm = np.linspace(start, end, n, dtype=np.float32)[:, None]
        return ramp

    def close(self) -> None:
        """Close every layer without events (the pipeline is going away)."""
        for layer in self._layers.values():
            layer.close()
        self._layers.clear()

    def _end(self, layer: Layer, reason: str, message: str | None) -> None:
        layer.close()
        self.emit(LayerEnded(layer.id, reason, message))
