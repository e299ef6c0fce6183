"""The exceptions ``audionode.client`` raises.

::

    AudionodeClientError        base of everything below
    ├── NodeError               the node refused a command (its error ``code`` and ``message``)
    ├── NodeUnavailable         the node (or every node of the pool) cannot be reached now
    │   └── NoNodesAvailable    no node of the pool is connected
    ├── AuthenticationFailed    the node refused the password (a configuration error)
    └── ProtocolError           the node sent something this client cannot read
"""

from __future__ import annotations


class AudionodeClientError(Exception):
    """Base class of the client's exceptions."""


class NodeError(AudionodeClientError):
    """The node answered a command with an error (``docs/API.md``, "Errors").

    ``status`` is the HTTP status (0 for a websocket reply), ``code`` the node's stable error
    name (``NOT_PLAYING``, ``FILTER_INVALID``, ``LOAD_FAILED``...), ``message`` its explanation.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if status == 0 else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class NodeUnavailable(AudionodeClientError):
    """The node cannot be reached (or a player waited too long for a failover to finish)."""


class NoNodesAvailable(NodeUnavailable):
    """No node of the pool is connected: a new player has nowhere to go."""


class AuthenticationFailed(AudionodeClientError):
    """The node refused the password: fix the configuration (no retry helps)."""


class ProtocolError(AudionodeClientError):
    """A frame or body from the node that does not have the documented shape."""
