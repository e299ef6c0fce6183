"""The control plane's service layer: :class:`NodeService` (``service/node.py``), the one place
commands enter; sessions (``sessions.py``), tracks and their tokens (``tracks.py``) and the
node's persistent state (``state.py``)."""

from audionode.service.node import NodeService

__all__ = ["NodeService"]
