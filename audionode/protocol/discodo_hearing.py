"""The Discodo front's wire for hearing (issue 15): recording, layers, VDP signalling.

Input structs of the routes ``record``, ``getLayers``, ``addLayer``, ``removeLayer``,
``openVdpChannel``, ``setVdpPeer`` and ``closeVdpChannel`` (``protocol/discodo_routes.py``) and
the builders that turn them into typed commands, validated here once: room ids and peer
addresses by ``protocol/vdp.py``, volumes and the duck gain by ``control/commands.py``. On
``/ws`` these routes are player ops: ``d`` carries ``guild_id`` (and optionally
``voice_client_id``) besides the body's fields (:class:`PlayerKeys`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from audionode.control import commands as c
from audionode.protocol import vdp
from audionode.protocol.discodo import Snowflake


class _In(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class PlayerKeys(msgspec.Struct, kw_only=True):
    """The voice client a ``/ws`` player op names (REST names it with headers)."""

    guild_id: Snowflake
    voice_client_id: Annotated[str, Meta(max_length=128)] | None = None


KEY_FIELDS = ("guild_id", "voice_client_id")


class RecordBody(_In):
    action: Literal["start", "stop"]


class LayerBody(_In):
    query: Annotated[str, Meta(min_length=1, max_length=2000)]
    volume: c.Volume = 1.0
    duck: bool | c.Duck | None = None
    """``true`` = :data:`DEFAULT_DUCK`, a number = the music's gain, ``false``/null = none."""


class LayerIdIn(_In):
    id: c.LayerId


RoomId = Annotated[str, Meta(min_length=1, max_length=vdp.MAX_ROOM_ID)]


class VdpOpenBody(_In):
    room_id: RoomId
    format: Annotated[str, Meta(max_length=64)]
    version: Annotated[int, Meta(ge=0, le=2**31)]


class VdpPeerBody(_In):
    room_id: RoomId
    address: Annotated[str, Meta(max_length=64)]


class VdpRoomIn(_In):
    room_id: RoomId


DEFAULT_DUCK = 0.25
"""The music's gain under a layer sent with ``"duck": true`` (-12 dB)."""


def record(b: RecordBody, _user: int | None) -> c.Record:
    return c.Record(action=b.action)


def add_layer(b: LayerBody, _user: int | None) -> c.AddLayer:
    duck = DEFAULT_DUCK if b.duck is True else None if b.duck is False else b.duck
    return c.AddLayer(query=b.query, volume=b.volume, duck=duck)


def remove_layer(b: LayerIdIn, _user: int | None) -> c.RemoveLayer:
    return c.RemoveLayer(layer=b.id)


def open_vdp(b: VdpOpenBody, _user: int | None) -> c.OpenVdpChannel:
    room_id = vdp.check_room_id(b.room_id)
    return c.OpenVdpChannel(room_id=room_id, format=b.format, version=b.version)


def set_peer(b: VdpPeerBody, _user: int | None) -> c.SetVdpPeer:
    ip, port = vdp.parse_address(b.address)
    return c.SetVdpPeer(room_id=vdp.check_room_id(b.room_id), host=str(ip), port=port)


def close_vdp(b: VdpRoomIn, _user: int | None) -> c.CloseVdpChannel:
    return c.CloseVdpChannel(room_id=vdp.check_room_id(b.room_id))


def split_keys(d: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``d`` of a ``/ws`` player op as (key fields, body fields); a non-object is passed on as
    the body, to be refused naming it."""
    if not isinstance(d, dict):
        return {}, d
    return (
        {k: v for k, v in d.items() if k in KEY_FIELDS},
        {k: v for k, v in d.items() if k not in KEY_FIELDS},
    )
