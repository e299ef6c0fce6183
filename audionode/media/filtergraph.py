"""FilterChain: a configured libavfilter graph that PCM flows through.

Built from the stages of a :class:`audionode.protocol.filters.Filters`; building it is also the last
validation step (libav parses every argument), so :func:`build_chain` is called before a new
filter set replaces the playing one, and a failure leaves playback untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import av
import av.filter
import av.logging
import numpy as np

from audionode.media.codec import RATE, TIME_BASE, Pcm, empty_pcm, frame_pcm, pcm_frame
from audionode.media.errors import describe_av_error
from audionode.media.filters import Stage
from audionode.media.filters import stages as stages_of
from audionode.protocol.filters import FilterError, Filters, Karaoke

_OUTPUT_FORMAT = f"sample_fmts=flt:channel_layouts=stereo:sample_rates={RATE}"


class FilterChain:
    """PCM in, PCM out through one libavfilter graph. Single-threaded: the pipeline's.

    The output length may differ from the input (timescale) and lag it (filter latency).
    """

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        self._graph = av.filter.Graph()
        self._pts = 0
        src = self._graph.add_abuffer(
            sample_rate=RATE, format="flt", layout="stereo", time_base=TIME_BASE
        )
        last = src
        for stage in self.stages:
            last = self._add(last, stage)
        fmt = self._graph.add("aformat", _OUTPUT_FORMAT)
        sink = self._graph.add("abuffersink")
        last.link_to(fmt)
        fmt.link_to(sink)
        self._graph.configure()

    def _add(self, last: av.filter.FilterContext, stage: Stage) -> av.filter.FilterContext:
        try:
            if stage.karaoke is not None:
                return self._add_karaoke(last, stage.karaoke)
            node = self._graph.add(stage.name, stage.args)
        except (av.error.FFmpegError, ValueError) as e:
            raise _StageError(stage, e) from None
        last.link_to(node)
        return node

    def _add_karaoke(self, last: av.filter.FilterContext, k: Karaoke) -> av.filter.FilterContext:
        g = self._graph
        split = g.add("asplit", "2")
        cancel = g.add("pan", f"stereo|c0=c0-{k.level:.6g}*c1|c1=c1-{k.level:.6g}*c0")
        mono = g.add("pan", "stereo|c0=0.5*c0+0.5*c1|c1=0.5*c0+0.5*c1")
        band = g.add("bandpass", f"f={k.filter_band:.6g}:t=h:w={k.filter_width:.6g}")
        level = g.add("volume", f"{k.mono_level:.6g}")
        mix = g.add("amix", "inputs=2:normalize=0")
        last.link_to(split)
        split.link_to(cancel, 0, 0)
        split.link_to(mono, 1, 0)
        mono.link_to(band)
        band.link_to(level)
        cancel.link_to(mix, 0, 0)
        level.link_to(mix, 0, 1)
        return mix

    def process(self, pcm: Pcm) -> Pcm:
        """Push ``pcm`` through the graph and return whatever came out."""
        if len(pcm):
            self._graph.push(pcm_frame(pcm, self._pts))
            self._pts += len(pcm)
        return self._pull()

    def flush(self) -> Pcm:
        """End the stream and return the samples the filters still held. The chain accepts
        no input afterwards (build a new one)."""
        self._graph.push(None)
        return self._pull()

    def _pull(self) -> Pcm:
        out = []
        while True:
            try:
                frame = self._graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                break
            if isinstance(frame, av.AudioFrame):
                out.append(frame_pcm(frame))
        if not out:
            return empty_pcm()
        return out[0] if len(out) == 1 else np.concatenate(out)


class _StageError(Exception):
    def __init__(self, stage: Stage, cause: BaseException) -> None:
        super().__init__(stage.label)
        self.stage = stage
        self.cause = cause


def build_chain(filters: Filters) -> FilterChain | None:
    """The chain for ``filters`` (None when no libavfilter stage is needed).

    Raises :class:`FilterError` naming the stage and libav's own explanation.
    """
    stages = stages_of(filters)
    if not stages:
        return None
    with av.logging.Capture(local=True) as logs:
        try:
            return FilterChain(stages)
        except _StageError as e:
            reason = _reason(logs, e.cause)
            raise FilterError(f"invalid filter `{e.stage.label}`: {reason}") from None
        except (av.error.FFmpegError, ValueError) as e:
            raise FilterError(f"invalid filter set: {_reason(logs, e)}") from None


def _reason(logs: list[tuple[int, str, str]], exc: BaseException) -> str:
    lines = [msg.strip() for _level, _name, msg in logs if msg.strip()]
    # Prefer libav's line about the option ('Unable to parse "g" option value "zz"').
    useful = [ln for ln in lines if not ln.startswith(("Error applying", "Error setting"))]
    useful.sort(key=lambda ln: "option" not in ln and "range" not in ln)
    return (useful or lines or [describe_av_error(exc)])[0].rstrip(".")
