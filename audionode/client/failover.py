"""Moving a player to another node when its node is lost (``docs/CLIENT.md``, "Failover").

What the player knew when its node was lost (:class:`Snapshot`) is rebuilt on the new node:

1. the voice session: the bot's voice state, then its voice server (the node connects to voice
   with them; the voice server ends the lost node's connection, if it still had one);
2. options (volume, crossfade, filters), repeat mode, context, and pause;
3. the current track, resolved again by its ``uri`` (a node refuses another node's track
   tokens) and queued with ``start_position`` = where it was when the node was lost, so the
   audio lost is what the lost node had buffered, not the time the move took;
4. the queue, resolved a few tracks at a time and queued in order, contexts kept.

A track the new node cannot load is reported (``on_audionode_track_exception``) and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audionode.client.commands import headers
from audionode.client.errors import AudionodeClientError, NodeError
from audionode.client.tracks import Playhead, Track

if TYPE_CHECKING:
    from audionode.client.node import Node
    from audionode.client.player import Player

log = logging.getLogger(__name__)


class Abandoned(AudionodeClientError):
    """The player left (``disconnect``) while it was being moved."""


JSON = Any

RESOLVE_AT_ONCE = 4
"""Queue entries resolved concurrently on the new node."""
CHUNK = 50
"""Queue entries per ``putSource``."""
END_MARGIN = 0.25
"""A track within this many seconds of its end is not restarted."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A player's state when its node was lost."""

    current: Track | None
    position: float
    paused: bool
    queue: tuple[Track, ...]
    options: dict[str, JSON] = field(default_factory=dict)
    repeat: str = "off"
    context: dict[str, JSON] = field(default_factory=dict)

    @classmethod
    def of(cls, p: Player) -> Snapshot:
        return cls(
            current=p.current,
            position=p.position,
            paused=p.paused,
            queue=tuple(p.queue),
            options=dict(p.options),
            repeat=p.repeat,
            context=dict(p.context),
        )

    def start_at(self) -> float | None:
        """Where the current track starts on the new node; None: it had ended."""
        cur = self.current
        if cur is None:
            return None
        if not cur.seekable:
            return 0.0
        assert cur.duration is not None
        if self.position >= cur.duration - END_MARGIN:
            return None
        return round(self.position, 3)


async def restore(p: Player, node: Node, snap: Snapshot, within: float) -> None:
    """Rebuild ``snap`` on ``node``; the player takes commands again when this returns."""
    old = p.node
    p._moving = True
    try:
        p._attach(node)
        p._playhead = Playhead(snap.position, time.time(), True)
        await p.voice.join(node, within)
        for step in (_settings, _current, _queue):
            if p._leaving:  # the bot disconnected the player meanwhile
                raise Abandoned(f"guild {p.guild.id}: disconnected while moving")
            await step(p, node, snap)
    finally:
        p._moving = False
    p._snapshot = None
    p._unsuspend()
    await p.voice.flush()
    log.info("guild %s: moved to node %s", p.guild.id, node.identifier)
    p.client.dispatch("audionode_player_moved", p, old, node)


async def _post(p: Player, node: Node, path: str, body: JSON) -> JSON:
    return await node.rest("POST", path, headers=headers(p), json=body)


async def _settings(p: Player, node: Node, snap: Snapshot) -> None:
    """Each setting on its own: one the new node refuses is logged, the rest still move."""
    wanted = {k: v for k, v in snap.options.items() if k in ("volume", "crossfade", "filter")}
    steps: list[tuple[str, JSON]] = []
    if wanted:
        steps.append(("/options", wanted))
    if snap.repeat != "off":
        steps.append(("/repeat", {"mode": snap.repeat}))
    if snap.context:
        steps.append(("/context", {"context": snap.context}))
    if snap.paused:
        steps.append(("/pause", None))  # the next track starts paused
    for path, body in steps:
        try:
            answer = await _post(p, node, path, body)
        except NodeError as e:
            log.warning("guild %s: node %s refused %s: %s", p.guild.id, node.identifier, path, e)
            continue
        if path == "/options":
            p.options = answer
    p._paused = snap.paused


async def _current(p: Player, node: Node, snap: Snapshot) -> None:
    start = snap.start_at()
    if snap.current is None or start is None:
        p.current, p._playhead = None, None
        return
    source = await _resolve(p, node, snap.current)
    if source is None:
        p.current, p._playhead = None, None
        return
    ref: dict[str, JSON] = {"encoded": source["encoded"], "context": snap.current.context}
    if start > 0:
        ref["start_position"] = start
    p._quiet_start = Track.from_wire(source, node.identifier).uri
    await _put(p, node, ref, [snap.current])


async def _put(p: Player, node: Node, refs: JSON, tracks: list[Track]) -> None:
    try:
        await _post(p, node, "/putSource", {"source": refs})
    except NodeError as e:  # QUEUE_FULL, an expired token...: those tracks are lost
        log.warning("guild %s: node %s refused %d tracks: %s", p.guild.id, node.identifier,
                    len(tracks), e)  # fmt: skip
        for track in tracks:
            p.client.dispatch("audionode_track_exception", p, track, e.message)


async def _queue(p: Player, node: Node, snap: Snapshot) -> None:
    tracks = snap.queue
    gate = asyncio.Semaphore(RESOLVE_AT_ONCE)

    async def resolve(t: Track) -> dict[str, JSON] | None:
        async with gate:
            return await _resolve(p, node, t)

    for i in range(0, len(tracks), CHUNK):
        chunk = tracks[i : i + CHUNK]
        sources = await asyncio.gather(*(resolve(t) for t in chunk))
        pairs = [(t, s) for t, s in zip(chunk, sources, strict=True) if s is not None]
        if pairs:
            await _put(p, node, [_ref(t, s) for t, s in pairs], [t for t, _ in pairs])


def _ref(track: Track, source: dict[str, JSON]) -> dict[str, JSON]:
    ref: dict[str, JSON] = {"encoded": source["encoded"], "context": track.context}
    if track.start_position:
        ref["start_position"] = track.start_position
    return ref


async def _resolve(p: Player, node: Node, track: Track) -> dict[str, JSON] | None:
    """The new node's description of ``track`` (with its own token), or None if it cannot
    load it (reported to the bot)."""
    try:
        body = await node.rest("GET", "/getSource", params={"query": track.uri})
    except NodeError as e:
        log.warning("guild %s: node %s cannot load %s: %s", p.guild.id, node.identifier,
                    track.uri, e)  # fmt: skip
        p.client.dispatch("audionode_track_exception", p, track, e.message)
        return None
    source = body.get("source") if isinstance(body, dict) else None
    if isinstance(source, list):
        source = source[0] if source else None
    return source if isinstance(source, dict) and source.get("encoded") else None
