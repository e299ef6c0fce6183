"""The exception tree of audionode.

::

    AudionodeError                 base of everything we raise on purpose
    ├── ConfigError                start-up configuration is invalid (exit code 2)
    ├── ClientError                the peer (bot, REST client) asked for something wrong: 4xx
    │   ├── BadRequest             malformed input: names the field and what was expected (400)
    │   ├── Unauthorized           no credentials (401)
    │   ├── Forbidden              wrong credentials or not allowed (403)
    │   ├── NotFound               the guild, voice client, track or route does not exist (404)
    │   ├── Conflict               the request is valid but the state forbids it now (409)
    │   ├── Unprocessable          well-formed, but it cannot be done (a query that loads nothing)
    │   └── NotIdentified          a control-socket op before IDENTIFY
    ├── RemoteError                something outside failed: a source, a voice server (502)
    │   ├── SourceError            resolving or opening a track failed
    │   └── VoiceError             the voice connection failed
    ├── Unavailable                the node cannot take this now; try later (503 + Retry-After)
    └── InternalError              our own bug, as the peer sees it (500, ``INTERNAL``)

Local misuse (our own bugs) is not in this tree: it stays a plain Python exception and is
logged with its traceback, while the peer only sees an ``INTERNAL`` error code: every front
door turns any exception into the error the peer sees with :func:`for_peer`, then maps that to
its wire in one place.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class AudionodeError(Exception):
    """Base class; ``code`` is the stable machine-readable name sent on the wire."""

    code = "ERROR"
    status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_wire(self) -> dict[str, str]:
        """The uniform error object: ``{"code": ..., "message": ...}``."""
        return {"code": self.code, "message": self.message}


class ConfigError(AudionodeError):
    code = "CONFIG"


class ClientError(AudionodeError):
    code = "BAD_REQUEST"
    status = 400


class BadRequest(ClientError):
    code = "BAD_REQUEST"
    status = 400


class Unauthorized(ClientError):
    code = "UNAUTHORIZED"
    status = 401


class Forbidden(ClientError):
    code = "FORBIDDEN"
    status = 403


class NotFound(ClientError):
    code = "NOT_FOUND"
    status = 404


class Conflict(ClientError):
    code = "CONFLICT"
    status = 409


class Unprocessable(ClientError):
    code = "UNPROCESSABLE"
    status = 422


class NotIdentified(ClientError):
    code = "NOT_IDENTIFIED"
    status = 403


class RemoteError(AudionodeError):
    code = "REMOTE"
    status = 502


class SourceError(RemoteError):
    code = "SOURCE_ERROR"


class VoiceError(RemoteError):
    code = "VOICE_ERROR"


class Unavailable(AudionodeError):
    """The request is fine but the node cannot take it now (``NODE_AT_CAPACITY``: every engine
    worker is at its budget). ``retry_after``: seconds the client should wait (the HTTP fronts
    send it as ``Retry-After``)."""

    code = "UNAVAILABLE"
    status = 503

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 10) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class InternalError(AudionodeError):
    code = "INTERNAL"


def for_peer(exc: BaseException, context: str) -> AudionodeError:
    """The error a peer sees for ``exc``: ours as is; anything else is our bug, logged with
    its traceback (``context`` says where) and reported without details."""
    if isinstance(exc, AudionodeError):
        return exc
    log.error("%s failed", context, exc_info=exc)
    return InternalError("internal error; see the node's log")
