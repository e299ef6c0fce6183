"""Opening a Playable with libav under its input policy (``audionode/netpolicy.py``).

libav only ever reads Python file objects here: in-memory bytes, a local file the ``local``
source resolved, or an :class:`~audionode.media.httpfile.HttpFile` that fetches through the
node's guard. Its own protocols (http, tcp, file, concat, data...) are never reached: every
other resource a container names goes through ``io_open``, which refuses it, except the
entries of an HLS playlist, fetched through the guard like the playlist itself.

Demuxers are a whitelist of audio containers that open nothing else (:data:`CONTAINERS`;
``hls`` too for network streams): playlists and indirections (concat, dash, ffmetadata,
image2, sdp, rtsp...) are refused with a clear message before they read a header.

The decoded shape is bounded too: a sample rate outside the policy's range, or too many
channels, is refused when the stream opens (and by the reader for every decoded frame), so
a tiny file cannot make the resampler produce gigabytes.
"""

from __future__ import annotations

import io
from typing import IO, Any

import av
import av.container
from av.audio.stream import AudioStream

from audionode.errors import SourceError
from audionode.media.httpfile import HttpFile, opener
from audionode.playable import Playable

CONTAINERS = (
    "aac,ac3,aiff,amr,ape,asf,au,avi,caf,dsf,dts,dtshd,eac3,flac,flv,loas,matroska,mlp,mov,"
    "mp3,mpc,mpc8,mpeg,mpegts,ogg,oma,shn,tak,truehd,tta,w64,wav,wv,xwma"
)
"""Demuxers libav may choose: audio containers that never open another resource."""
NETWORK_CONTAINERS = f"{CONTAINERS},hls"
"""For network streams: HLS too (its playlists and segments are fetched through the guard)."""
_NETWORK_OPTIONS = {"analyzeduration": "200000"}
"""Stream parameters from the first 0.2 s (libav's default reads 5 s before it answers, which
on a live stream is 5 s of waiting, and on a stalled one a failure with nothing played)."""
_HLS_OPTIONS = {"http_persistent": "0", "http_multiple": "0", "http_seekable": "0"}
"""libav's hls demuxer reuses a connection for the next segment only on its own http
protocol: on our file objects that path fails an assertion (hls.c, open_url_keepalive) and
aborts the process. One request per file instead."""


INDEX_BYTES = 64 << 10
"""Cap on libav's seek index per stream (its ``indexmem`` option). libav records a 24-byte
entry for every key packet it demuxes, and every Opus or MP3 packet is a key packet: 1.2 KB/s
per stream for as long as the container is open, up to libav's default 1 MiB (300 guilds:
300 MiB). Past the cap libav halves the index and goes on; a seek then starts from a coarser
entry and reads forward, which costs a few packets' reading, not accuracy (docs/SECURITY.md,
"Memory per open track")."""


class MediaRejected(SourceError):
    """The media is of a kind the node does not play; the message says which and why."""


class MediaInput:
    """An open container and the file objects under it; :meth:`close` releases all."""

    def __init__(self, container: av.container.InputContainer, files: list[Any]) -> None:
        self.container = container
        self._files = files

    def __enter__(self) -> MediaInput:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()
        for f in self._files:
            f.close()

    def abort(self) -> None:
        """Wake a read blocked on the network (from another thread)."""
        for f in list(self._files):
            if isinstance(f, HttpFile):
                f.abort()


def open_input(playable: Playable, timeout: float, files: list[Any] | None = None) -> MediaInput:
    """Open ``playable``; raises SourceError (refused, unreachable, not media) or libav's
    errors. ``files`` receives every file object opened, as it is opened (so another thread
    can abort a stalled open)."""
    files = [] if files is None else files
    source, io_open, options = _source(playable, timeout, files)
    try:
        container = av.open(source, "r", format=playable.format, options=options, io_open=io_open)
    except Exception as e:
        for f in files:
            f.close()
        raise _refused_container(e) or e from None
    opened = MediaInput(container, files)
    try:
        check_stream(container, playable)
    except SourceError:
        opened.close()
        raise
    return opened


def _source(
    playable: Playable, timeout: float, files: list[Any]
) -> tuple[IO[bytes] | HttpFile, Any, dict[str, str]]:
    """The file object libav reads, its ``io_open`` and the demuxer options."""
    options = {**playable.options, "format_whitelist": CONTAINERS, "indexmem": str(INDEX_BYTES)}
    if playable.data is not None:
        return io.BytesIO(playable.data), _no_nested, options
    url = playable.url or ""
    if url.lower().startswith(("http://", "https://")):
        io_open = opener(playable.policy, timeout, dict(playable.headers), files)
        network = {**_NETWORK_OPTIONS, **options, **_HLS_OPTIONS}
        network["format_whitelist"] = NETWORK_CONTAINERS
        return io_open(url, 1, {}), io_open, network
    local = open(url, "rb")  # noqa: SIM115 - closed by MediaInput
    files.append(local)
    return local, _no_nested, options


def check_stream(container: av.container.InputContainer, playable: Playable) -> AudioStream:
    """The first audio stream, once its rate and channel count pass the policy."""
    if not container.streams.audio:
        raise MediaRejected(f"{playable.describe()} has no audio stream")
    stream = container.streams.audio[0]
    ctx = stream.codec_context
    problem = playable.policy.audio_problem(ctx.sample_rate or 0, ctx.channels or 0)
    if problem:
        raise MediaRejected(problem)
    return stream


def _refused_container(exc: Exception) -> MediaRejected | None:
    """The whitelist's refusal, from the libav log line PyAV attaches to the error (this
    thread's own; a captured log may hold another thread's lines)."""
    log = getattr(exc, "log", None)
    if isinstance(exc, av.error.FFmpegError) and log and "whitelist" in str(log[2]):
        return MediaRejected(f"the media's container ({log[1]}) is not one the node plays")
    return None


def _no_nested(url: str, _flags: int, _options: dict[str, str]) -> Any:
    raise PermissionError("the media names another resource, which the node does not open")
