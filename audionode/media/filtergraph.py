"""FilterChain: the configured filters that PCM flows through, and how a chain is built.

A chain is a row of segments: libavfilter graphs, and between them the one filter computed
in numpy (Lavalink's distortion, which libav could only do with an expression evaluator).

Building is checked and bounded, off the caller's thread (:func:`build_async`): the graph is
configured (libav parses every argument, all written by us from typed values), then a
trial of :data:`TRIAL_SECONDS` of noise must come out finite and within the CPU budget
(:data:`CPU_SHARE` of real time). The whole build has a deadline (:data:`BUILD_DEADLINE`).
While playing, a chain that overruns its CPU budget raises :class:`FilterFailure` and the
mixer drops it: a filter set can cost its own player its filters, never the shared thread.
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
import time
from collections.abc import Callable, Sequence

import av
import av.filter
import av.logging
import numpy as np

from audionode.media.codec import RATE, TIME_BASE, Pcm, empty_pcm, frame_pcm, pcm_frame
from audionode.media.errors import describe_av_error
from audionode.media.filters import Stage, distort
from audionode.media.filters import stages as stages_of
from audionode.media.frames import FRAME_SAMPLES
from audionode.protocol.filters import FilterError, Filters, Karaoke

_OUTPUT_FORMAT = f"sample_fmts=flt:channel_layouts=stereo:sample_rates={RATE}"
TRIAL_SECONDS = 0.5
"""Noise pushed through a new chain before it may play."""
CPU_SHARE = 0.1
"""A chain may use at most this share of one core for its audio (0.1: 2 ms per 20 ms frame;
the costliest whitelisted filter at its bounds takes about 1 %)."""
BUILD_DEADLINE = 2.0
"""Seconds a build and its trial may take, or the set is refused."""
_WINDOW = RATE
"""Samples of audio (in or out, the longer) over which a playing chain's CPU time is summed."""


class FilterFailure(Exception):
    """A playing chain failed or overran its CPU budget; the message is for the user."""


class _Graph:
    """One libavfilter graph: 48 kHz stereo float in and out."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self._graph = av.filter.Graph()
        self._pts = 0
        src = self._graph.add_abuffer(
            sample_rate=RATE, format="flt", layout="stereo", time_base=TIME_BASE
        )
        last = src
        for stage in stages:
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
            node = self._graph.add(stage.name, stage.args or None)
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
        if len(pcm):
            self._graph.push(pcm_frame(pcm, self._pts))
            self._pts += len(pcm)
        return self._pull()

    def flush(self) -> Pcm:
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
        return _join(out)


class _Numpy:
    """A sample-wise stage computed in numpy (no state, nothing held back)."""

    def __init__(self, fn: Callable[[Pcm], Pcm]) -> None:
        self._fn = fn

    def process(self, pcm: Pcm) -> Pcm:
        return self._fn(pcm) if len(pcm) else pcm

    def flush(self) -> Pcm:
        return empty_pcm()


class FilterChain:
    """PCM in, PCM out through the chain's segments. Single-threaded: the pipeline's.

    The output length may differ from the input (timescale) and lag it (filter latency).
    """

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        self._segments: list[_Graph | _Numpy] = []
        run: list[Stage] = []
        for stage in self.stages:
            if stage.distortion is None:
                run.append(stage)
                continue
            if run:
                self._segments.append(_Graph(run))
                run = []
            self._segments.append(_Numpy(functools.partial(distort, stage.distortion)))
        if run or not self._segments:
            self._segments.append(_Graph(run))
        self._cpu = 0.0
        self._samples = 0

    def process(self, pcm: Pcm) -> Pcm:
        """Push ``pcm`` through the chain and return whatever came out. Raises
        :class:`FilterFailure` when the chain fails or overruns its CPU budget."""
        start = time.thread_time()
        try:
            out = self._run(_finite(pcm))  # float media may hold NaN; no filter gets one
        except (av.error.FFmpegError, ValueError) as e:
            raise FilterFailure(f"the filters failed: {describe_av_error(e)}") from None
        self._account(time.thread_time() - start, max(len(pcm), len(out)))
        return _finite(out)

    def _run(self, pcm: Pcm) -> Pcm:
        for segment in self._segments:
            pcm = segment.process(pcm)
        return pcm

    def flush(self) -> Pcm:
        """End the stream and return the samples the filters still held. The chain accepts
        no input afterwards (build a new one)."""
        out = empty_pcm()
        for segment in self._segments:
            out = _join([segment.process(out), segment.flush()]) if len(out) else segment.flush()
        return _finite(out)

    def _account(self, cpu: float, samples: int) -> None:
        self._cpu += cpu
        self._samples += samples
        if self._samples < _WINDOW:
            return
        seconds = self._samples / RATE
        used, self._cpu, self._samples = self._cpu, 0.0, 0
        if used > seconds * CPU_SHARE:
            raise FilterFailure(
                f"the filters were removed: they took {used * 1000:.0f} ms of CPU for "
                f"{seconds * 1000:.0f} ms of audio (at most {CPU_SHARE:.0%} of a core)"
            )


def _join(parts: list[Pcm]) -> Pcm:
    if not parts:
        return empty_pcm()
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _finite(pcm: Pcm) -> Pcm:
    """NaN or infinity (an unstable filter) never reaches the encoder."""
    if np.isfinite(pcm).all():
        return pcm
    out: Pcm = np.nan_to_num(pcm, nan=0.0, posinf=1.0, neginf=-1.0)
    return out


class _StageError(Exception):
    def __init__(self, stage: Stage, cause: BaseException) -> None:
        super().__init__(stage.label)
        self.stage = stage
        self.cause = cause


def build_chain(filters: Filters) -> FilterChain | None:
    """The chain for ``filters`` (None when no stage is needed), configured and tried on
    noise. Blocking: call it through :func:`build_async`.

    Raises :class:`FilterError` naming the stage and libav's own explanation, or the trial's
    finding (not finite, too slow).
    """
    stages = stages_of(filters)
    if not stages:
        return None
    with av.logging.Capture(local=True) as logs:
        try:
            _trial(FilterChain(stages))
            return FilterChain(stages)
        except _StageError as e:
            reason = _reason(logs, e.cause)
            raise FilterError(f"invalid filter `{e.stage.label}`: {reason}") from None
        except (av.error.FFmpegError, ValueError) as e:
            raise FilterError(f"invalid filter set: {_reason(logs, e)}") from None


def _trial(chain: FilterChain) -> None:
    noise = np.random.default_rng(7).uniform(-0.5, 0.5, (int(TRIAL_SECONDS * RATE), 2))
    pcm = noise.astype(np.float32)
    start = time.thread_time()
    out = []
    try:
        for i in range(0, len(pcm), FRAME_SAMPLES):
            out.append(chain._run(pcm[i : i + FRAME_SAMPLES]))
    except av.error.FFmpegError as e:
        raise FilterError(f"invalid filter set: {describe_av_error(e)}") from None
    used = time.thread_time() - start
    seconds = max(len(pcm), sum(len(x) for x in out)) / RATE
    if used > seconds * CPU_SHARE:
        raise FilterError(
            f"invalid filter set: too costly ({used * 1000:.0f} ms of CPU for "
            f"{seconds * 1000:.0f} ms of audio; at most {CPU_SHARE:.0%} of a core)"
        )
    # The second half only: libav's vibrato reads its delay line before writing it (junk
    # for its first milliseconds; process() replaces non-finite samples), while an unstable
    # filter never recovers.
    if not all(np.isfinite(x).all() for x in out[len(out) // 2 :]):
        raise FilterError(
            "invalid filter set: the output is not finite (too much gain, or an unstable filter)"
        )


def _reason(logs: list[tuple[int, str, str]], exc: BaseException) -> str:
    log = getattr(exc, "log", None)  # this thread's last libav error, attached by PyAV
    if isinstance(exc, av.error.FFmpegError) and log and str(log[2]).strip():
        return str(log[2]).strip().rstrip(".")
    lines = [msg.strip() for _level, _name, msg in logs if msg.strip()]
    # Prefer libav's line about the option ('Value 7000 for parameter 'tempo' out of range').
    useful = [ln for ln in lines if not ln.startswith(("Error applying", "Error setting"))]
    useful.sort(key=lambda ln: "option" not in ln and "range" not in ln)
    return (useful or lines or [describe_av_error(exc)])[0].rstrip(".")


_builders = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="filters")
Done = Callable[[FilterChain | None, str | None], None]


def build_async(filters: Filters, done: Done, deadline: float | None = None) -> None:
    """Build (and try) the chain of ``filters`` on a builder thread; ``done(chain, None)``
    or ``done(None, message)`` is called exactly once, on some other thread, at the latest
    ``deadline`` seconds (default :data:`BUILD_DEADLINE`) from now (a build still running
    then is abandoned)."""
    deadline = BUILD_DEADLINE if deadline is None else deadline
    once = threading.Lock()

    def finish(chain: FilterChain | None, error: str | None) -> None:
        if once.acquire(blocking=False):
            timer.cancel()
            done(chain, error)

    def work() -> None:
        try:
            finish(build_chain(filters), None)
        except FilterError as e:
            finish(None, e.message)
        except Exception as e:  # the player must hear about anything
            finish(None, f"invalid filter set: {e}")

    timer = threading.Timer(
        deadline, finish, (None, f"invalid filter set: not built within {deadline:g} s")
    )
    timer.daemon = True
    timer.start()
    _builders.submit(work)
