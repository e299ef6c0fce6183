"""The boundary type between source resolution (control plane) and media (the engine).

A source's ``open(track)`` returns a :class:`Playable`; the engine's messages carry it to the
media pipeline. It lives in neither package so that neither side imports the other: it is
plain data that crosses process boundaries.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from audionode.netpolicy import InputPolicy


class Playable(msgspec.Struct, frozen=True, kw_only=True):
    """What the media pipeline opens: a URL (with HTTP headers and libav options) or a whole
    media file held in memory.

    Exactly one of ``url`` and ``data`` is set. ``url`` is an ``http(s)://`` URL or an
    absolute file path (only the ``local`` source makes those). ``options`` are libav
    demuxer options (``{"probesize": "65536"}``; the whitelists are always the node's);
    ``format`` names the container when it cannot be guessed (``"wav"``). Playables are
    plain data: they cross process boundaries. A URL is never handed to libav: the engine
    fetches it through the input policy's guard (``media/httpfile.py``), libav reads that.
    """

    url: str | None = None
    data: bytes | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    options: dict[str, str] = msgspec.field(default_factory=dict)
    format: str | None = None
    is_live: bool = False
    policy: InputPolicy = msgspec.field(default_factory=InputPolicy)
    """Where the bytes may come from and what the decoded audio may be; the source manager
    stamps the node's policy on every Playable a source returns (the default is the strict
    one)."""

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise ValueError("Playable needs exactly one of url and data")

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        format: str | None = None,
        is_live: bool = False,
        policy: InputPolicy | None = None,
    ) -> Playable:
        return cls(
            url=url,
            headers=dict(headers or {}),
            options=dict(options or {}),
            format=format,
            is_live=is_live,
            policy=policy or InputPolicy(),
        )

    @classmethod
    def from_bytes(
        cls, data: bytes, *, format: str | None = None, policy: InputPolicy | None = None
    ) -> Playable:
        return cls(data=data, format=format, policy=policy or InputPolicy())

    def describe(self) -> str:
        """A short human description for error messages (never the bytes)."""
        return self.url if self.url is not None else f"<{len(self.data or b'')} bytes>"
