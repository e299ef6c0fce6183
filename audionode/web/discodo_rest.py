"""Discodo 3's REST routes (discodo-reference.md §3.2) plus what Discodo lacked.

Each handler: parse the body with ``protocol/``, call the player or the service, serialise.
Player routes name the voice client with headers ``User-ID``, ``Shard-ID`` (optional, and
honoured: Discodo's client never sent it), ``Guild-ID`` and ``VoiceClient-ID``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, json

from audionode.errors import BadRequest, Conflict
from audionode.player.player import GuildPlayer
from audionode.player.queue import Entry
from audionode.protocol import discodo as proto
from audionode.sources.api import Track
from audionode.web.context import service_of

bp = Blueprint("discodo_rest")


def _header_int(request: Request, name: str, required: bool = True) -> int | None:
    raw = request.headers.get(name)
    if raw is None or raw == "":
        if required:
            raise BadRequest(f"header `{name}` is required")
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"header `{name}`: expected an integer, got {raw!r}") from None


def player_of(request: Request) -> GuildPlayer:
    """The player named by the request's headers; 400/403/404 with the uniform body."""
    user_id = _header_int(request, "User-ID")
    guild_id = _header_int(request, "Guild-ID")
    shard_id = _header_int(request, "Shard-ID", required=False)
    vc_id = request.headers.get("VoiceClient-ID")
    if not vc_id:
        raise BadRequest("header `VoiceClient-ID` is required")
    assert user_id is not None and guild_id is not None
    return service_of(request).resolve(user_id, shard_id, guild_id, vc_id)[1]


def body(request: Request, typ: type[proto._T]) -> proto._T:
    """The JSON body as ``typ``; a missing or non-JSON body is a 400 naming the problem."""
    try:
        data: Any = msgspec.json.decode(request.body) if request.body else {}
    except msgspec.DecodeError:
        raise BadRequest("body: expected JSON") from None
    return proto.parse(data, typ, "")


def _given(value: Any) -> Any:
    return None if value is msgspec.UNSET else value


# --- tracks ---------------------------------------------------------------------------------


def _query(request: Request) -> str:
    query = request.args.get("query")
    if not isinstance(query, str) or not query:
        raise BadRequest("query parameter `query` is required")
    return query


def _as_entries(
    request: Request, refs: proto.TrackRef | list[proto.TrackRef]
) -> list[Entry[Track]]:
    service = service_of(request)
    items = refs if isinstance(refs, list) else [refs]
    return [
        Entry(
            service.track_from_token(ref.encoded, f"source[{i}].encoded"),
            context=ref.context,
            start_position=ref.start_position,
        )
        for i, ref in enumerate(items)
    ]


@bp.get("/getSource")
async def get_source(request: Request) -> HTTPResponse:
    service = service_of(request)
    result = await service.load(_query(request))
    tracks = [service.describe_track(t) for t in result.tracks]
    return json({"source": tracks if result.type == "playlist" else tracks[0]})


@bp.get("/searchSources")
async def search_sources(request: Request) -> HTTPResponse:
    service = service_of(request)
    result = await service.load(_query(request))
    return json({"sources": [service.describe_track(t) for t in result.tracks]})


@bp.post("/loadSource")
async def load_source(request: Request) -> HTTPResponse:
    player = player_of(request)
    service = service_of(request)
    result = await service.load(body(request, proto.QueryBody).query)
    tracks = result.tracks if result.type == "playlist" else result.tracks[:1]
    entries: list[Entry[Track]] = [Entry(t) for t in tracks]
    player.enqueue(entries)
    described = [player.cb.describe(e) for e in entries]
    return json({"source": described if result.type == "playlist" else described[0]})


@bp.post("/putSource")
async def put_source(request: Request) -> HTTPResponse:
    return _put(request)


@bp.post("/queue")
async def insert_source(request: Request) -> HTTPResponse:
    return _put(request)


def _put(request: Request) -> HTTPResponse:
    player = player_of(request)
    data = body(request, proto.PutSourceBody)
    entries = _as_entries(request, data.source)
    index = None if data.index is msgspec.UNSET else data.index
    player.enqueue(entries, index)
    described = [player.cb.describe(e) for e in entries]
    return json({"source": described if isinstance(data.source, list) else described[0]})


# --- player state ---------------------------------------------------------------------------


@bp.get("/context")
async def get_context(request: Request) -> HTTPResponse:
    return json(player_of(request).context)


@bp.post("/context")
async def set_context(request: Request) -> HTTPResponse:
    player = player_of(request)
    player.context = body(request, proto.ContextBody).context
    return json(player.context)


@bp.get("/options")
async def get_options(request: Request) -> HTTPResponse:
    return json(player_of(request).options())


@bp.post("/options")
async def set_options(request: Request) -> HTTPResponse:
    player = player_of(request)
    opts = body(request, proto.OptionsBody)
    filters = _given(opts.filter)
    if filters is not None:
        filters = service_of(request).validate_filters(filters)
    player.set_options(_given(opts.volume), _given(opts.crossfade), _given(opts.autoplay), filters)
    return json(player.options())


@bp.get("/seek")
async def get_seek(request: Request) -> HTTPResponse:
    state = player_of(request).describe()
    return json({k: state[k] for k in ("duration", "position", "remain")})


@bp.post("/seek")
async def seek(request: Request) -> HTTPResponse:
    player = player_of(request)
    player.seek(body(request, proto.SeekBody).offset)
    return empty()


@bp.post("/skip")
async def skip(request: Request) -> HTTPResponse:
    player = player_of(request)
    player.skip(body(request, proto.SkipBody).offset)
    return empty()


@bp.post("/previous")
async def previous(request: Request) -> HTTPResponse:
    player_of(request).previous()
    return empty()


@bp.post("/pause")
async def pause(request: Request) -> HTTPResponse:
    player_of(request).pause()
    return empty()


@bp.post("/resume")
async def resume(request: Request) -> HTTPResponse:
    player_of(request).resume()
    return empty()


@bp.post("/stop")
async def stop(request: Request) -> HTTPResponse:
    player_of(request).stop()
    return empty()


@bp.get("/repeat")
async def get_repeat(request: Request) -> HTTPResponse:
    return json({"mode": player_of(request).repeat})


@bp.post("/repeat")
async def set_repeat(request: Request) -> HTTPResponse:
    player = player_of(request)
    player.set_repeat(body(request, proto.RepeatBody).mode)
    return json({"mode": player.repeat})


@bp.post("/shuffle")
async def shuffle(request: Request) -> HTTPResponse:
    player = player_of(request)
    player.shuffle()
    return json({"entries": player.queue.describe()})


@bp.post("/clear")
async def clear(request: Request) -> HTTPResponse:
    player = player_of(request)
    player.clear()
    return json({"entries": []})


@bp.get("/current")
async def get_current(request: Request) -> HTTPResponse:
    return json(player_of(request).describe_current())


@bp.post("/current")
async def set_current(request: Request) -> HTTPResponse:
    player = player_of(request)
    if player.current is None:
        raise Conflict("nothing is playing", code="NOT_PLAYING")
    player.current.entry.context = body(request, proto.ContextBody).context
    return json(player.describe_current())


@bp.get("/queue")
async def get_queue(request: Request) -> HTTPResponse:
    return json({"entries": player_of(request).queue.describe()})


def _queue_key(raw: str) -> int | str:
    """``/queue/<index>`` or ``/queue/<tag>`` (tags are 32 hex digits, never all digits)."""
    return int(raw) if raw.lstrip("-").isdigit() else raw


@bp.get("/queue/<key:str>")
async def get_queue_item(request: Request, key: str) -> HTTPResponse:
    player = player_of(request)
    entry = player.queue[player.queue.index_of(_queue_key(key))]
    return json(player.cb.describe(entry))


@bp.post("/queue/<key:str>")
async def update_queue_item(request: Request, key: str) -> HTTPResponse:
    player = player_of(request)
    update = body(request, proto.QueueItemBody)
    entry = player.queue[player.queue.index_of(_queue_key(key))]
    if update.context is not msgspec.UNSET:
        entry.context = update.context
    if update.start_position is not msgspec.UNSET:
        entry.start_position = update.start_position
    if update.index is not msgspec.UNSET:
        player.move(entry.tag, update.index)
    return json(player.cb.describe(entry))


@bp.delete("/queue/<key:str>")
async def delete_queue_item(request: Request, key: str) -> HTTPResponse:
    player = player_of(request)
    removed = player.remove(_queue_key(key))
    return json({"removed": player.cb.describe(removed), "entries": player.queue.describe()})
