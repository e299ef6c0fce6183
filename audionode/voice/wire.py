"""Voice websocket framing (docs/discord-voice.md §1.3, §1.4): JSON envelopes, binary frames, the
server's numbered-message buffer for resume. Used by :mod:`audionode.voice.gateway`.

- JSON: ``{"op": n, "d": ..., "seq": n}``; ``seq`` only on numbered server messages.
- Server binary: ``[seq u16 BE][op u8][payload]``. Client binary: ``[op u8][payload]``.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from typing import Final

import msgspec

from audionode.errors import VoiceError
from audionode.voice.opcodes import PAYLOAD_TYPES, CloseCode, Op

SEQ_MOD: Final = 1 << 16
_SEQ = struct.Struct(">H")


class Side(enum.Enum):
    """Which end of the voice websocket a gateway object plays."""

    CLIENT = "client"
    SERVER = "server"


class InvalidState(RuntimeError):
    """A builder was called when the protocol does not allow it (a bug in the caller)."""


class GatewayError(VoiceError):
    """The peer sent something invalid; ``close_code`` is what a server closes with (§1.7)."""

    def __init__(self, close_code: int, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code


class Envelope(msgspec.Struct):
    op: int
    d: msgspec.Raw = msgspec.Raw(b"null")
    seq: int | None = None


class Resumed(msgspec.Struct, frozen=True):
    """Event: op 9 Resumed (its ``d`` is null)."""


class BinaryMessage(msgspec.Struct, frozen=True):
    """Event: a binary DAVE op; ``payload`` follows the opcode byte (and the seq on S→C)."""

    op: Op
    payload: bytes


class Other(msgspec.Struct, frozen=True):
    """Event (server side): a known op we do not model (12, 14-20, 32); ``d`` is raw JSON."""

    op: int
    d: bytes


class _Out(msgspec.Struct, omit_defaults=True):
    op: int
    d: msgspec.Struct | None = None
    seq: int | None = None


_envelope = msgspec.json.Decoder(Envelope)
_decoders = {op: msgspec.json.Decoder(t) for op, t in PAYLOAD_TYPES.items()}
_encoder = msgspec.json.Encoder()


def decode_envelope(text: str | bytes) -> Envelope:
    """Parse the outer JSON object; undecodable input → :class:`GatewayError` 4002."""
    try:
        return _envelope.decode(text)
    except msgspec.DecodeError as exc:
        raise GatewayError(CloseCode.DECODE_ERROR, f"invalid voice gateway JSON: {exc}") from None


def decode_payload(op: Op, raw: msgspec.Raw) -> msgspec.Struct:
    """Decode ``d`` of a modelled JSON op; wrong shape → :class:`GatewayError` 4020 naming the
    field (msgspec's message says e.g. ``Expected `int`, got `str` - at `$.ssrc```)."""
    try:
        payload: msgspec.Struct = _decoders[op].decode(raw)
    except msgspec.DecodeError as exc:
        raise GatewayError(CloseCode.BAD_REQUEST, f"op {int(op)} {op.name}: {exc}") from None
    return payload


def encode_json(op: Op, payload: msgspec.Struct | None, seq: int | None = None) -> str:
    """One JSON text frame. ``d`` is ``null`` when ``payload`` is None; ``seq`` omitted if None."""
    if payload is None:
        body = b'{"op":%d,"d":null' % int(op)
        body += b',"seq":%d}' % seq if seq is not None else b"}"
        return body.decode()
    return _encoder.encode(_Out(int(op), payload, seq)).decode()


def encode_binary(op: Op, payload: bytes, seq: int | None = None) -> bytes:
    """A binary frame: server frames carry ``seq`` (u16), client frames do not (§1.4)."""
    head = bytes([op]) if seq is None else _SEQ.pack(seq) + bytes([op])
    return head + payload


def split_server_binary(frame: bytes) -> tuple[int, int, bytes]:
    """``(seq, op, payload)`` of a server binary frame; shorter than 3 bytes → 4002."""
    if len(frame) < 3:
        raise GatewayError(CloseCode.DECODE_ERROR, f"binary frame of {len(frame)} bytes < 3")
    return _SEQ.unpack_from(frame)[0], frame[2], frame[3:]


def split_client_binary(frame: bytes) -> tuple[int, bytes]:
    """``(op, payload)`` of a client binary frame; empty → 4002."""
    if not frame:
        raise GatewayError(CloseCode.DECODE_ERROR, "empty binary frame")
    return frame[0], frame[1:]


class ReplayBuffer:
    """The server's numbered messages, for op 7 Resume replay (§1.6).

    Sequence numbers are u16 on the wire (binary prefix) and wrap; internally messages are
    counted without bound so a wrapped ``seq_ack`` maps back unambiguously while the buffer is
    shorter than 32768 messages.
    """

    def __init__(self, capacity: int = 1024) -> None:
        if not 0 < capacity < SEQ_MOD // 2:
            raise ValueError(f"capacity must be in 1..32767, got {capacity}")
        self._buf: deque[tuple[int, str | bytes]] = deque(maxlen=capacity)
        self._last = 0  # absolute number of the last message; the first one is 1

    @property
    def last_seq(self) -> int:
        """Wire seq of the last numbered message, or -1 if none was sent."""
        return self._last % SEQ_MOD if self._last else -1

    def next_seq(self) -> int:
        """Reserve the next wire seq."""
        self._last += 1
        return self._last % SEQ_MOD

    def store(self, message: str | bytes) -> None:
        """Remember the message just framed with :meth:`next_seq`."""
        self._buf.append((self._last, message))

    def replay_after(self, seq_ack: int) -> list[str | bytes] | None:
        """Messages numbered after ``seq_ack`` (-1 = none seen), oldest first; ``None`` when
        some were already evicted or ``seq_ack`` was never sent (caller closes 4006)."""
        if seq_ack == -1 or seq_ack is None:
            ack_abs = 0
        else:
            if not 0 <= seq_ack < SEQ_MOD or not self._last:
                return None
            ack_abs = self._last - (self._last - seq_ack) % SEQ_MOD
            if ack_abs < 0:
                return None
        oldest = self._buf[0][0] if self._buf else self._last + 1
        if ack_abs + 1 < oldest:
            return None
        return [msg for n, msg in self._buf if n > ack_abs]
