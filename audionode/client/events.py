"""What a player does with each event of its node (``docs/API.md``, "Node → client events"),
and the bot events it dispatches through discord.py's ``client.dispatch``:

- ``on_audionode_track_start(player, track)``: the track's first frame was sent;
- ``on_audionode_track_end(player, track, reason)``: ``finished``, ``skipped``, ``stopped``,
  ``replaced`` or ``error``;
- ``on_audionode_track_exception(player, track, message)``: the track could not be played;
- ``on_audionode_player_error(player, message)``: the node's engine refused a command.

A handler raises ``KeyError``/``TypeError``/``ValueError``/``ProtocolError`` on a malformed
event; the player then reads its state again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from audionode.client.tracks import Playhead, Track, current_from_wire

if TYPE_CHECKING:
    from audionode.client.player import Player

log = logging.getLogger(__name__)
JSON = Any
Handler = Callable[["Player", dict[str, JSON]], None]


def _node_id(p: Player) -> str:
    return "" if p.node is None else p.node.identifier


def vc_created(p: Player, d: dict[str, JSON]) -> None:
    p.voice_client_id = str(d["id"])
    p._created.set()
    if not (p._moving or p.suspended):
        p._ready.set()


def voice_connected(p: Player, d: dict[str, JSON]) -> None:
    p._connected.set()


SESSION_NO_LONGER_VALID = 4006
"""Voice close code: another connection identified with this voice session."""


def voice_closed(p: Player, d: dict[str, JSON]) -> None:
    if d.get("will_reconnect"):
        return
    p._connected.clear()
    log.info("guild %s: the node's voice connection closed (%s %s)",
             p.guild.id, d.get("code"), d.get("reason"))  # fmt: skip
    if d.get("code") == SESSION_NO_LONGER_VALID and p._ready.is_set() and not p._leaving:
        # Another node took the voice session: one this player left (a node that came back
        # and reconnected voice on its own). This player is the one that should play.
        p.pool.reclaim(p)


def vc_destroyed(p: Player, d: dict[str, JSON]) -> None:
    if p._leaving or p._moving or p.suspended:
        return
    # The node gave the player up (its vc_timeout, an operator): leave the channel too.
    log.warning("guild %s: node %s destroyed the player", p.guild.id, _node_id(p))
    p.voice_client_id = None
    asyncio.get_running_loop().create_task(p.disconnect(force=True))


def queue_event(p: Player, d: dict[str, JSON]) -> None:
    if not p.queue.apply(d.get("name"), d.get("args")):
        log.info("guild %s: queue mirror out of step; reading it again", p.guild.id)
        p._schedule_resync()


def source_start(p: Player, d: dict[str, JSON]) -> None:
    track, head = current_from_wire(d["source"], _node_id(p), p._paused)
    # The entry already current (no SOURCE_STOP since; a repeat ends first): its node
    # re-opened it where it was (it restarted with its state): the same play goes on.
    going_on = p.current is not None and p.current.tag == track.tag
    p.current, p._playhead = track, head
    if going_on:
        return
    if p._quiet_start is not None and p._quiet_start == track.uri:
        p._quiet_start = None  # the failover restarted it: the bot was told when it started
        return
    p.client.dispatch("audionode_track_start", p, track)


def source_stop(p: Player, d: dict[str, JSON]) -> None:
    track = Track.from_wire(d["source"], _node_id(p))
    if p.current is not None and p.current.tag == track.tag:
        p.current, p._playhead = None, None
    p.client.dispatch("audionode_track_end", p, track, str(d.get("reason")))


def source_traceback(p: Player, d: dict[str, JSON]) -> None:
    track = Track.from_wire(d["source"], _node_id(p))
    p.client.dispatch("audionode_track_exception", p, track, str(d.get("traceback")))


def player_traceback(p: Player, d: dict[str, JSON]) -> None:
    message = str(d.get("traceback"))
    log.warning("guild %s: node %s: %s", p.guild.id, _node_id(p), message)
    p.client.dispatch("audionode_player_error", p, message)


def player_update(p: Player, d: dict[str, JSON]) -> None:
    state = d.get("state")
    if state in ("PAUSED", "PLAYING"):
        p._paused = state == "PAUSED"
    p._playhead = Playhead(float(d["position"]), float(d["as_of"]), p._paused)


HANDLERS: dict[str, Handler] = {
    "VC_CREATED": vc_created,
    "VOICE_CONNECTED": voice_connected,
    "VOICE_CLOSED": voice_closed,
    "VC_DESTROYED": vc_destroyed,
    "QUEUE_EVENT": queue_event,
    "SOURCE_START": source_start,
    "SOURCE_STOP": source_stop,
    "SOURCE_TRACEBACK": source_traceback,
    "PLAYER_TRACEBACK": player_traceback,
    "PLAYER_UPDATE": player_update,
}
