"""Probe a Playable for what a source wants to know before a track is queued.

Sources may not import av (only ``media/`` does); they call :func:`probe` instead. It blocks
(network or disk): call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

from dataclasses import dataclass

import av

from audionode.errors import SourceError
from audionode.media.errors import describe_av_error
from audionode.media.reader import open_container
from audionode.playable import Playable


@dataclass(frozen=True, slots=True)
class MediaProbe:
    duration_ms: int | None
    """None for endless streams."""
    is_live: bool
    codec: str
    title: str | None
    artist: str | None


def probe(playable: Playable, timeout: float = 10.0) -> MediaProbe:
    """Open ``playable``, read its header and tags, close it.

    Raises :class:`SourceError` (one line, no URL) when it cannot be opened or has no audio.
    """
    try:
        with open_container(playable, timeout) as container:
            if not container.streams.audio:
                raise SourceError("the media has no audio stream")
            stream = container.streams.audio[0]
            tags = {k.lower(): v for k, v in {**stream.metadata, **container.metadata}.items()}
            duration = None if container.duration is None else container.duration // 1000
            return MediaProbe(
                duration_ms=duration,
                is_live=playable.is_live or duration is None,
                codec=stream.codec_context.name,
                title=tags.get("title") or tags.get("icy-name") or tags.get("streamtitle"),
                artist=tags.get("artist") or tags.get("album_artist"),
            )
    except SourceError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise SourceError(f"cannot read the media: {describe_av_error(e)}") from None
