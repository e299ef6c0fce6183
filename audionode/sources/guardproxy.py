"""GuardProxy: the loopback HTTP proxy every yt-dlp request goes through.

yt-dlp fetches pages, APIs and manifests with its own HTTP stack, redirects included; its
``proxy`` option is the one setting every one of its request handlers honours (urllib,
requests, websockets, curl_cffi), so the node gives each extraction a proxy URL and the proxy
applies the node's guard (``sources/netguard.py``): ``CONNECT host:port`` (HTTPS) and
absolute-form requests (HTTP, each redirect hop being a new request) are resolved, every
address checked, and the connection made to the checked address. TLS stays end to end between
yt-dlp and the site.

Each extraction gets its own credentials (:meth:`GuardProxy.session`): a request without a
live session's credentials is refused (407), and what the guard refused during an extraction
is known to it, so the caller reports the refusal itself rather than yt-dlp's paraphrase.
Every refusal has the same answer whatever lies behind the address (docs/SECURITY.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit

from audionode.errors import AudionodeError, BadRequest, Forbidden
from audionode.sources.netguard import NetGuard

_HEAD_MAX = 64 * 1024
_DROP = frozenset(("proxy-authorization", "proxy-connection", "connection", "keep-alive"))


class ProxySession:
    """One extraction's credentials and what the guard refused for it."""

    def __init__(self, port: int) -> None:
        self.token = secrets.token_urlsafe(18)
        self.url = f"http://node:{self.token}@127.0.0.1:{port}"
        self.refusals: list[Forbidden] = []
        self.tasks: set[asyncio.Task[None]] = set()


class GuardProxy:
    """Start with :meth:`start` (idempotent); one :meth:`session` per extraction."""

    def __init__(self, guard: NetGuard) -> None:
        self.guard = guard
        self._server: asyncio.Server | None = None
        self._sessions: dict[str, ProxySession] = {}
        self._lock = asyncio.Lock()
        self.port = 0

    async def start(self) -> None:
        async with self._lock:
            if self._server is None:
                self._server = await asyncio.start_server(
                    self._serve, "127.0.0.1", 0, limit=_HEAD_MAX
                )
                self.port = self._server.sockets[0].getsockname()[1]

    @contextlib.contextmanager
    def session(self) -> Iterator[ProxySession]:
        """Credentials valid for the ``with`` body; its connections are closed at the end."""
        session = ProxySession(self.port)
        self._sessions[session.token] = session
        try:
            yield session
        finally:
            del self._sessions[session.token]
            for task in session.tasks:
                task.cancel()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # -- one client connection -------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.guard.timeout):
                head = await reader.readuntil(b"\r\n\r\n")
            line, headers = _parse_head(head)
            session = self._sessions.get(_token(headers))
            if session is None:
                await _answer(writer, 407, "Proxy Authentication Required")
                return
            task = asyncio.current_task()
            assert task is not None
            session.tasks.add(task)
            try:
                await self._relay(session, line, headers, reader, writer)
            finally:
                session.tasks.discard(task)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            await _answer(writer, 400, "Bad Request")
        except AudionodeError as e:
            await _answer(writer, 400, "Bad Request", e.message)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _relay(
        self,
        session: ProxySession,
        line: list[str],
        headers: list[tuple[str, str]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        method, target, version = line
        host, port, path = _destination(method, target)
        upstream = await self._connect(session, host, port, writer)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                kept = [(k, v) for k, v in headers if k.lower() not in _DROP]
                kept.append(("Connection", "close"))
                up_writer.write(_head(f"{method} {path} {version}", kept))
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()

    async def _connect(
        self, session: ProxySession, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the checked address of ``host``, or None once the client has
        been answered why not (a refusal is also recorded for the extraction)."""
        try:
            address = await self.guard.pick(host, port)
        except Forbidden as e:
            session.refusals.append(e)
            await _answer(writer, 403, "Forbidden", e.message)
            return None
        except AudionodeError as e:
            await _answer(writer, 502, "Bad Gateway", e.message)
            return None
        try:
            async with asyncio.timeout(self.guard.timeout):
                return await asyncio.open_connection(str(address), port)
        except (OSError, TimeoutError):
            await _answer(writer, 502, "Bad Gateway", f"could not connect to {host}")
            return None


def _parse_head(head: bytes) -> tuple[list[str], list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    line = lines[0].split(" ")
    if len(line) != 3:
        raise ValueError("malformed request line")
    headers = []
    for raw in lines[1:]:
        if raw:
            name, sep, value = raw.partition(":")
            if not sep:
                raise ValueError("malformed header")
            headers.append((name.strip(), value.strip()))
    return line, headers


def _token(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() == "proxy-authorization" and value[:6].lower() == "basic ":
            with contextlib.suppress(ValueError):
                user_pass = base64.b64decode(value[6:], validate=True).decode("latin-1")
                return user_pass.partition(":")[2]
    return ""


def _destination(method: str, target: str) -> tuple[str, int, str]:
    """``(host, port, origin-form path)`` of a proxied request; BadRequest if unusable."""
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise BadRequest("CONNECT needs host:port")
        return host, int(port), ""
    parts = urlsplit(target)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise BadRequest("only absolute http:// requests are proxied")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port or 80, path


def _head(line: str, headers: list[tuple[str, str]]) -> bytes:
    text = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return text.encode("latin-1")


async def _answer(writer: asyncio.StreamWriter, status: int, reason: str, body: str = "") -> None:
    data = body.encode()
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))]
    writer.write(_head(f"HTTP/1.1 {status} {reason}", [*headers, ("Connection", "close")]))
    writer.write(data)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close (the other direction may still run)."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
