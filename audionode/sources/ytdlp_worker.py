"""What runs inside the yt-dlp worker processes (see ``procpool``).

Kept apart from ``ytdlp.py`` so a worker imports only this module and yt-dlp itself.
Returns plain dicts holding only the fields the node uses (less to pickle).
"""

from __future__ import annotations

import re
from typing import Any

_KEEP = (
    "_type",
    "id",
    "title",
    "url",
    "webpage_url",
    "original_url",
    "uploader",
    "channel",
    "artist",
    "duration",
    "is_live",
    "live_status",
    "thumbnail",
    "extractor_key",
    "ie_key",
    "http_headers",
    "protocol",
    "acodec",
    "ext",
)
_CAUSED_BY = re.compile(r"\s*\(caused by .*\)\s*$", re.S)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Silent:
    """yt-dlp logger that prints nothing: errors come back as the exception message."""

    def debug(self, msg: str) -> None: ...
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...


def warm_up() -> None:
    """Pay yt-dlp's one-time costs at worker start-up, not inside the first call's timeout:
    importing it and compiling every extractor's URL pattern (the scan that picks an
    extractor for a URL), about 0.5 s."""
    from yt_dlp.extractor import gen_extractor_classes

    for extractor in gen_extractor_classes():
        extractor.suitable("https://warm-up.invalid/")


def extract(query: str, flat: bool, socket_timeout: float, proxy: str) -> dict[str, Any]:
    """``extract_info`` without downloading: one video, or a playlist/search whose entries
    are left unresolved when ``flat``. Every request yt-dlp makes goes through ``proxy`` (the
    node's guard, ``guardproxy.py``). Raises RuntimeError with yt-dlp's reason."""
    import yt_dlp

    options: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "skip_download": True,
        "logger": _Silent(),
        # opus first: it can be forwarded to Discord without re-encoding
        "format": "bestaudio[acodec=opus]/bestaudio/best",
        "socket_timeout": socket_timeout,
        "proxy": proxy,
        "noplaylist": False,
        "playlistend": 200,
    }
    if flat:
        options["extract_flat"] = "in_playlist"
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.sanitize_info(ydl.extract_info(query, download=False))
    except Exception as e:  # yt-dlp's errors carry the useful text
        raise RuntimeError(clean_message(str(e))) from None
    return _slim(info)


def clean_message(text: str) -> str:
    text = _ANSI.sub("", text).strip()
    text = text.removeprefix("ERROR:").strip()
    return _CAUSED_BY.sub("", text.splitlines()[0] if text else "extraction failed")


def _slim(info: Any) -> dict[str, Any]:
    if not isinstance(info, dict):
        return {}
    out = {k: info[k] for k in _KEEP if info.get(k) is not None}
    if isinstance(info.get("entries"), list):
        out["entries"] = [_slim(e) for e in info["entries"] if e]
    return out
