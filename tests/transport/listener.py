"""``Listener``: the one independent test voice client (``tests/voiceserver/member.py``) as the
transport, end-to-end and front-door tests call it, where ``opened`` and ``ops`` give
(arrival time, item) pairs. One implementation; only the two views differ."""

from __future__ import annotations

from typing import Any

from audionode.voice.crypto import Opened
from tests.voiceserver.member import VoiceMember

__all__ = ["Listener"]


class Listener(VoiceMember):
    def opened(self, ssrc: int) -> list[tuple[float, Opened]]:  # type: ignore[override]
        """(arrival time, opened packet) of every RTP packet of ``ssrc``."""
        return self.opened_at(ssrc)

    def ops(self, op: int) -> list[tuple[float, dict[str, Any]]]:  # type: ignore[override]
        """(arrival time, message) of every JSON message with opcode ``op``."""
        return self.ops_at(op)
