"""Probe a Playable for what a source wants to know before a track is queued.

The control process never imports this module (it would load av): sources run :func:`probe`
in the probe process pool (``sources/probing.py``), by name. It opens the media exactly as
the engine will (``media/container.py``: through the fetch guard, whitelisted containers,
bounded sample rate and channels), so what the probe accepts the engine can play.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import av

from audionode.errors import SourceError
from audionode.media.container import open_input
from audionode.media.errors import describe_av_error
from audionode.media.httpfile import StreamTimeout
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

    Raises :class:`SourceError` (one line, no URL) when it cannot be opened, is refused by
    the input policy, or has no acceptable audio stream.
    """
    try:
        with open_input(playable, timeout) as media:
            container = media.container
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
    except StreamTimeout:
        raise SourceError(f"the media did not answer within {timeout:g} s") from None
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise SourceError(f"cannot read the media: {describe_av_error(e)}") from None


def probe_plain(playable: Playable, timeout: float = 10.0) -> dict[str, Any]:
    """:func:`probe` as plain data, for the probe process pool (``sources/probing.py``): the
    control process unpickles the answer without importing this module."""
    return dataclasses.asdict(probe(playable, timeout))
