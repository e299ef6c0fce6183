"""HttpFile: media over HTTP(S) as a seekable file object that libav reads, every connection
made by the node under the input policy (``audionode/netpolicy.py``).

libav never opens a network URL itself (its protocols are not reachable: ``reader.py`` hands
it file objects only). Here each connection, redirect hop by hop, resolves the host, checks
every address, and connects to the checked address; the address is then pinned for the
file's later requests to the same host (range requests after a seek), so a name that
re-resolves elsewhere (DNS rebinding) cannot switch it. HLS playlists name more URLs: libav
asks :func:`opener` for each (segments, reloads), which fetches them the same way.

Blocking, one file per reader thread. :meth:`HttpFile.abort` may be called from another
thread: it wakes a blocked read at once.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from audionode import __version__
from audionode.errors import SourceError
from audionode.netpolicy import MAX_REDIRECTS, InputPolicy, IPAddress, pick, split_url

_REDIRECTS = (301, 302, 303, 307, 308)
_PLAYLIST_TYPES = frozenset(
    ("application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl")
)
_SKIP_MAX = 256 * 1024
"""A forward seek up to this far is read through rather than a new request."""
_USER_AGENT = f"audionode/{__version__}"
_RECONNECTS = 2
"""Fresh requests after a connection breaks mid-body (libav's ``reconnect`` did this)."""


class StreamTimeout(OSError):
    """Nothing arrived for the read timeout: the server never answered (``answered`` False)
    or stopped sending in the middle of the body."""

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


class HttpStatusError(SourceError):
    """The server answered with an error status; the message is fit for the end user."""


class HttpFile:
    """A read-only file over HTTP(S); ``name`` is the URL after redirects (libav resolves a
    playlist's relative entries against it)."""

    def __init__(
        self,
        url: str,
        *,
        policy: InputPolicy,
        timeout: float,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.name = url
        self.size: int | None = None
        self._policy = policy
        self._timeout = timeout
        self._headers = dict(headers or {})
        self._pins: dict[tuple[str, int], IPAddress] = {}
        self._conn: http.client.HTTPConnection | None = None
        self._resp: http.client.HTTPResponse | None = None
        self._pos = 0
        """Where the next read starts (a seek only moves this)."""
        self._at = 0
        """Where the open response is."""
        self._ranges = False
        self._limit: int | None = None
        self._aborted = False
        self._failed = False
        self._lock = threading.Lock()
        self._open(0)

    # -- the file interface PyAV uses ------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        """True when the server serves byte ranges of a known size (libav may seek)."""
        return self._ranges and self.size is not None

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            target = offset
        elif whence == 1:
            target = self._pos + offset
        elif whence == 2 and self.size is not None:
            target = self.size + offset
        else:
            raise OSError("the stream's size is unknown")
        if target < 0:
            raise OSError("negative seek position")
        self._pos = target  # the request, if one is needed, waits for the next read
        return target

    def read(self, n: int = -1) -> bytes:
        if self._pos != self._at or self._resp is None:
            self._reposition()
        if self.size is not None and self._pos >= self.size:
            return b""
        want = n if n > 0 else 65536
        data = self._read_some(want)
        tries = 0
        while not data and self._broken():
            if tries == _RECONNECTS:
                raise OSError("the connection broke and could not be resumed")
            tries += 1
            self._resume()
            data = self._read_some(want)
        self._pos += len(data)
        self._at = self._pos
        if self._limit is not None and self._pos > self._limit:
            raise SourceError(f"the playlist is larger than {self._limit} bytes")
        return data

    def close(self) -> None:
        self._drop()

    def abort(self) -> None:
        """Stop: a read blocked in another thread returns at once (with an error)."""
        with self._lock:
            self._aborted = True
            conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    # -- internals ------------------------------------------------------------------------

    def _read_some(self, n: int) -> bytes:
        """Whatever arrives next (one socket read), b"" at the end or when the body broke."""
        assert self._resp is not None
        try:
            return self._resp.read1(n)
        except TimeoutError:
            raise StreamTimeout(f"nothing for {self._timeout:g} s", answered=True) from None
        except (http.client.HTTPException, OSError):
            if self._aborted:
                raise OSError("aborted") from None
            self._failed = True
            return b""

    def _broken(self) -> bool:
        """After an empty read: did the body break off (rather than end)?"""
        if self._aborted:
            raise OSError("aborted")
        failed, self._failed = self._failed, False
        return failed or (self.size is not None and self._pos < self.size)

    def _resume(self) -> None:
        """A new request after the body broke off: from here when the server serves ranges,
        else from the start read through to here; a live stream simply carries on."""
        pos = self._pos
        self._open(pos if self.seekable() else 0)
        if self.size is None:
            self._at = pos
        elif self._at != pos:
            self._skip(pos - self._at)

    def _reposition(self) -> None:
        gap = self._pos - self._at
        if self._resp is not None and gap > 0 and (gap <= _SKIP_MAX or not self.seekable()):
            self._skip(gap)
            return
        if self._resp is not None and gap == 0:
            return
        if not self.seekable() and self._resp is not None:
            raise OSError("the stream cannot seek")
        self._resume()

    def _skip(self, gap: int) -> None:
        """Read ``gap`` bytes of the open response and drop them."""
        while gap > 0:
            data = self._read_some(min(65536, gap))
            if not data:
                raise OSError("the stream ended before the seek position")
            gap -= len(data)
            self._at += len(data)

    def _open(self, start: int) -> None:
        self._drop()
        url = self.name
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                conn, resp = self._request(url, start)
                location = resp.getheader("Location")
                if resp.status in _REDIRECTS and location:
                    conn.close()
                    url = urljoin(url, location)
                    continue
                self._accept(url, conn, resp, start)
                return
        except BaseException:
            self._drop()  # no connection outlives a failed open
            raise
        raise SourceError(f"too many redirects (more than {MAX_REDIRECTS})")

    def _request(
        self, url: str, start: int
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        scheme, host, port = split_url(url)
        if self._aborted:
            raise OSError("aborted")
        address = self._pins.get((host, port))
        if address is None:
            address = self._pins[(host, port)] = pick(host, port, self._policy)
        conn = _connection(scheme, host, port, address, self._timeout)
        with self._lock:
            self._conn = conn
        headers = {"User-Agent": _USER_AGENT, "Accept": "*/*", **self._headers}
        headers["Accept-Encoding"] = "identity"
        if start:
            headers["Range"] = f"bytes={start}-"
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", path, headers=headers)
            return conn, conn.getresponse()
        except TimeoutError:
            conn.close()
            message = f"{host} did not answer within {self._timeout:g} s"
            raise StreamTimeout(message, answered=False) from None
        except (OSError, http.client.HTTPException):
            conn.close()
            if self._aborted:
                raise OSError("aborted") from None
            raise SourceError(f"could not connect to {host}") from None

    def _accept(
        self,
        url: str,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        start: int,
    ) -> None:
        if resp.status >= 400:
            conn.close()
            raise HttpStatusError(f"the server answered HTTP {resp.status} {resp.reason}")
        self.name, self._resp = url, resp
        if resp.status == 206:
            self._ranges, self._at = True, start
            total = (resp.getheader("Content-Range") or "").rpartition("/")[2]
            if total.isdigit():
                self.size = int(total)
        else:
            # a server that ignored the range does not serve ranges, whatever it says
            accepts = (resp.getheader("Accept-Ranges") or "").lower() == "bytes"
            self._ranges, self._at = accepts and not start, 0
            length = resp.getheader("Content-Length") or ""
            self.size = int(length) if length.isdigit() else None
        self._limit = self._playlist_limit(url, resp)

    def _playlist_limit(self, url: str, resp: http.client.HTTPResponse) -> int | None:
        kind = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
        path = urlsplit(url).path.lower()
        if kind in _PLAYLIST_TYPES or path.endswith((".m3u8", ".m3u")):
            limit = self._policy.max_playlist_bytes
            if self.size is not None and self.size > limit:
                raise SourceError(f"the playlist is larger than {limit} bytes")
            return limit
        return None

    def _drop(self) -> None:
        with self._lock:
            conn, self._conn, self._resp = self._conn, None, None
        if conn is not None:
            conn.close()


def _connection(
    scheme: str, host: str, port: int, address: IPAddress, timeout: float
) -> http.client.HTTPConnection:
    """An HTTP(S) connection to ``host`` (Host header, TLS name check) made to ``address``."""
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def connect(_addr: Any, timeout: Any = None, source: Any = None) -> socket.socket:
        return socket.create_connection((str(address), port), timeout)

    conn._create_connection = connect  # type: ignore[attr-defined]
    return conn


Opener = Callable[[str, int, dict[str, str]], HttpFile]


def opener(
    policy: InputPolicy, timeout: float, headers: dict[str, str], opened: list[HttpFile]
) -> Opener:
    """libav's ``io_open`` for the files a stream names (HLS segments and reloads): HTTP(S)
    only, fetched like the stream itself; each file is added to ``opened`` (for abort)."""

    def io_open(url: str, flags: int, _options: dict[str, str]) -> HttpFile:
        if flags & 2:  # AVIO_FLAG_WRITE
            raise PermissionError("the media asked to write a file")
        if not url.lower().startswith(("http://", "https://")):
            raise PermissionError("the media names a resource that is not HTTP(S)")
        stream = HttpFile(url, policy=policy, timeout=timeout, headers=headers)
        opened.append(stream)
        return stream

    return io_open
