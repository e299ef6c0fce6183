"""The Discodo front's command catalogue: every REST route and websocket op, by its Discodo name.

A :class:`Route` says how its input is validated (a wire struct from ``protocol/discodo.py``),
which typed command it becomes, which key it needs (:class:`Scope`) and how the typed result
is written back (``protocol/discodo_map.py``). The REST driver, the ``/ws`` session and the
seed-003 RPC front all use this one table, so a command means the same thing through every
door. Names are those of Discodo's client (``getSource``, ``setOptions``...) and its websocket
ops (``getState``, ``VC_DESTROY``...); routes Discodo lacked get names in the same style.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import UNSET

from audionode.control import commands as c
from audionode.protocol import discodo as w
from audionode.protocol import discodo_hearing as h
from audionode.protocol import discodo_map as m
from audionode.protocol.filters import parse_filters


class Scope(enum.Enum):
    """What key a route needs besides its input."""

    NODE = "node"
    """Nothing: node-wide."""
    SESSION = "session"
    """The caller's session (``/ws``: its IDENTIFY; RPC: ``user_id``/``shard_id``)."""
    GUILD = "guild"
    """The caller's session and the input's ``guild_id`` (the websocket's player ops)."""
    PLAYER = "player"
    """A voice client by user, shard, guild and voice-client id (REST headers)."""


Build = Callable[[Any, int | None], Any]
"""``(validated input, caller's user id) -> typed command``."""


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    scope: Scope
    wire: type[Any] | None
    """The input struct; None: the input is ignored (``GET_STATUS``)."""
    build: Build
    reply: Callable[[Any], Any] | None = None
    """Typed result -> JSON; None: REST answers 204, the websocket sends nothing."""
    http: tuple[str, str] | None = None
    ws_reply: str | None = None
    """The websocket op of the reply (a websocket route when set, or when ``ws`` is)."""
    ws: bool = False

    @property
    def on_ws(self) -> bool:
        return self.ws or self.ws_reply is not None


def _just(command: Callable[[], Any]) -> Build:
    return lambda _wire, _user: command()


def _put(body: w.PutSourceBody, _user: int | None) -> c.Put:
    many = isinstance(body.source, list)
    refs = body.source if isinstance(body.source, list) else [body.source]
    tracks = tuple(
        c.TrackIn(
            token=r.encoded,
            field=f"source[{i}].encoded" if many else "source.encoded",
            context=r.context,
            start_position=r.start,
        )
        for i, r in enumerate(refs)
    )
    return c.Put(tracks=tracks, index=None if body.index is UNSET else body.index, as_list=many)


def _options(body: w.OptionsBody, _user: int | None) -> c.SetOptions:
    filters = None if body.filter is UNSET else parse_filters(body.filter)
    return c.SetOptions(
        volume=None if body.volume is UNSET else body.volume,
        crossfade=None if body.crossfade is UNSET else body.crossfade,
        autoplay=None if body.autoplay is UNSET else body.autoplay,
        filters=filters,
    )


def _update(body: w.QueueItemBody, _user: int | None) -> c.UpdateEntry:
    return c.UpdateEntry(
        key=w.queue_key(body.key),
        index=None if body.index is UNSET else body.index,
        context=None if body.context is UNSET else body.context,
        start_position=None if body.start_position is UNSET else body.start_position,
    )


def discord_event(
    dispatch: w.DiscordDispatch, user_id: int | None
) -> c.VoiceState | c.VoiceServer | c.Ignored:
    """``DISCORD_EVENT``: the bot's own voice state and voice server (seed 002); other users'
    voice states and other dispatches are dropped without further parsing."""
    if dispatch.t == "VOICE_STATE_UPDATE":
        d = dispatch.d
        if not isinstance(d, dict) or str(d.get("user_id")) != str(user_id):
            return c.Ignored()
        vsu = w.parse(d, w.VoiceStateUpdate, "d.d")
        return c.VoiceState(
            guild_id=vsu.guild_id, session_id=vsu.session_id, channel_id=vsu.channel_id
        )
    if dispatch.t == "VOICE_SERVER_UPDATE":
        vs = w.parse(dispatch.d, w.VoiceServerUpdate, "d.d")
        return c.VoiceServer(guild_id=vs.guild_id, token=vs.token, endpoint=vs.endpoint)
    return c.Ignored()


def _mode(mode: c.RepeatMode) -> m.ModeJson:
    return {"mode": mode}


def _same(value: c.Context) -> c.Context:
    return value


P, N = Scope.PLAYER, Scope.NODE
ROUTES: tuple[Route, ...] = (
    # --- node ----------------------------------------------------------------------------------
    Route("getSource", N, w.QueryIn, lambda b, _: c.Search(query=b.query, first_only=True),
          m.found_one, ("GET", "/getSource")),
    Route("searchSources", N, w.QueryIn, lambda b, _: c.Search(query=b.query), m.found_all,
          ("GET", "/searchSources")),
    Route("getStatus", N, None, _just(c.GetStatus), m.status, ("GET", "/status")),
    Route("GET_STATUS", N, None, _just(c.GetStatus), m.status, ws_reply=w.Op.STATUS),
    # --- the websocket's session and guild ops ----------------------------------------------------
    Route("DISCORD_EVENT", Scope.SESSION, w.DiscordDispatch, discord_event, ws=True),
    Route("VC_DESTROY", Scope.GUILD, w.GuildRequest, _just(c.Destroy), ws=True),
    Route("getState", Scope.GUILD, w.GuildRequest, _just(c.GetState), m.state,
          ws_reply=w.Op.GET_STATE),
    Route("getQueue", Scope.GUILD, w.GuildRequest, _just(c.GetQueue), m.queue_ws,
          ws_reply=w.Op.GET_QUEUE),
    # --- tracks -----------------------------------------------------------------------------------
    Route("loadSource", P, w.QueryIn, lambda b, _: c.Load(query=b.query), m.queued,
          ("POST", "/loadSource")),
    Route("putSource", P, w.PutSourceBody, _put, m.queued, ("POST", "/putSource")),
    Route("insertSource", P, w.PutSourceBody, _put, m.queued, ("POST", "/queue")),
    # --- the queue --------------------------------------------------------------------------------
    Route("queue", P, w.NoBody, _just(c.GetQueue), m.queue_rest, ("GET", "/queue")),
    Route("getQueueSource", P, w.QueueKeyIn, lambda b, _: c.GetEntry(key=w.queue_key(b.key)),
          m.entry, ("GET", "/queue/<key>")),
    Route("setQueueSource", P, w.QueueItemBody, _update, m.entry, ("POST", "/queue/<key>")),
    Route("removeQueueSource", P, w.QueueKeyIn,
          lambda b, _: c.RemoveEntry(key=w.queue_key(b.key)), m.removed,
          ("DELETE", "/queue/<key>")),
    Route("shuffle", P, w.NoBody, _just(c.Shuffle), m.queue_rest, ("POST", "/shuffle")),
    Route("clear", P, w.NoBody, _just(c.Clear), m.queue_rest, ("POST", "/clear")),
    # --- playback ---------------------------------------------------------------------------------
    Route("skip", P, w.SkipBody, lambda b, _: c.Skip(count=b.offset), None, ("POST", "/skip")),
    Route("previous", P, w.NoBody, _just(c.Previous), None, ("POST", "/previous")),
    Route("pause", P, w.NoBody, _just(c.Pause), None, ("POST", "/pause")),
    Route("resume", P, w.NoBody, _just(c.Resume), None, ("POST", "/resume")),
    Route("stop", P, w.NoBody, _just(c.Stop), None, ("POST", "/stop")),
    Route("getSeek", P, w.NoBody, _just(c.GetPosition), m.position, ("GET", "/seek")),
    Route("seek", P, w.SeekBody, lambda b, _: c.Seek(position=b.offset), None, ("POST", "/seek")),
    Route("getRepeat", P, w.NoBody, _just(c.GetRepeat), _mode, ("GET", "/repeat")),
    Route("setRepeat", P, w.RepeatBody, lambda b, _: c.SetRepeat(mode=b.mode), _mode,
          ("POST", "/repeat")),
    Route("getCurrent", P, w.NoBody, _just(c.GetCurrent), m.current, ("GET", "/current")),
    Route("setCurrent", P, w.ContextBody, lambda b, _: c.SetCurrentContext(context=b.context),
          m.current, ("POST", "/current")),
    # --- options and context --------------------------------------------------------------------
    Route("getOptions", P, w.NoBody, _just(c.GetOptions), m.options, ("GET", "/options")),
    Route("setOptions", P, w.OptionsBody, _options, m.options, ("POST", "/options")),
    Route("getVCContext", P, w.NoBody, _just(c.GetContext), _same, ("GET", "/context")),
    Route("setVCContext", P, w.ContextBody, lambda b, _: c.SetContext(context=b.context), _same,
          ("POST", "/context")),
    # --- hearing (issue 15): also /ws player ops, `d` naming the guild (discodo_hearing.py) ---
    Route("record", P, h.RecordBody, h.record, m.recording, ("POST", "/record"),
          ws_reply="record"),
    Route("getLayers", P, w.NoBody, _just(c.GetLayers), m.layers, ("GET", "/layers"),
          ws_reply="getLayers"),
    Route("addLayer", P, h.LayerBody, h.add_layer, m.layer, ("POST", "/layers"),
          ws_reply="addLayer"),
    Route("removeLayer", P, h.LayerIdIn, h.remove_layer, m.layer, ("DELETE", "/layers/<id>"),
          ws_reply="removeLayer"),
    Route("openVdpChannel", P, h.VdpOpenBody, h.open_vdp, m.vdp_channel,
          ("POST", "/vdp/channels"), ws_reply="openVdpChannel"),
    Route("setVdpPeer", P, h.VdpPeerBody, h.set_peer, m.vdp_channel,
          ("POST", "/vdp/channels/<room_id>/peer"), ws_reply="setVdpPeer"),
    Route("closeVdpChannel", P, h.VdpRoomIn, h.close_vdp, m.vdp_channel,
          ("DELETE", "/vdp/channels/<room_id>"), ws_reply="closeVdpChannel"),
)  # fmt: skip

BY_NAME: dict[str, Route] = {r.name: r for r in ROUTES}
WS_OPS: dict[str, Route] = {r.name: r for r in ROUTES if r.on_ws}


def build(route: Route, fields: Any, user_id: int | None, what: str) -> tuple[Any, Any]:
    """Validate ``fields`` as the route's input (errors name ``<what>.<field>``); returns
    ``(input, typed command)``."""
    wire = None if route.wire is None else w.parse(fields, route.wire, what)
    return wire, route.build(wire, user_id)


def rest_request(
    route: Route, headers: Mapping[str, str], fields: Any
) -> tuple[c.PlayerRef | None, Any]:
    """A REST request: the key its headers name (player routes) and its typed command."""
    ref = w.player_ref(headers) if route.scope is Scope.PLAYER else None
    return ref, build(route, fields, None, "")[1]


def argument_fields(route: Route) -> list[str]:
    """The input field names of a route (for RPC's ``commands`` listing)."""
    if route.wire is None:
        return []
    return [f.encode_name for f in msgspec.structs.fields(route.wire)]
