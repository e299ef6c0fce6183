"""Channels and voice states of the voice server: what LVSP creates and the voice gateway checks.

Pure data and rules, no I/O. The LVSP driver applies INFO/VST_REQUEST here and gets back the
resulting wire objects plus the voice states whose clients must be disconnected; the voice gateway
asks :meth:`VoiceRegistry.authenticate` on op 0/op 7. Decisions: ``docs/protocols/lvsp.md`` §5-7.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from msgspec import UNSET

from audionode.protocol.lvsp import ChannelInfo, VoiceInfo, VstRequest

DEFAULT_BITRATE = 64000
"""Bitrate of a channel created implicitly by VST_REQUEST (Discord's default for voice)."""

_FLAGS = ("deaf", "mute", "self_deaf", "self_mute", "suppress")
_SNOWFLAKE = re.compile(r"[0-9]{1,20}")


def is_snowflake(text: str) -> bool:
    """1-20 ASCII digits. (``str.isdigit`` also accepts "²", which ``int()`` refuses, and
    ``int()`` refuses texts of over 4300 digits: neither may reach it from the wire.)"""
    return _SNOWFLAKE.fullmatch(text) is not None


@dataclass
class Channel:
    id: int
    bitrate: int
    dave_required: bool

    def info(self) -> ChannelInfo:
        return ChannelInfo(str(self.id), bitrate=self.bitrate, dave_required=self.dave_required)


@dataclass(eq=False)
class VoiceState:
    """A user allowed into a channel. ``server_id`` is what the client sends as op 0 ``server_id``:
    the guild id, or the channel id when there is no guild (calls; lvsp.md §6)."""

    user_id: int
    channel_id: int
    guild_id: int | None
    session_id: str
    token: str
    deaf: bool = False
    mute: bool = False
    self_deaf: bool = False
    self_mute: bool = False
    suppress: bool = False

    @property
    def server_id(self) -> int:
        return self.guild_id if self.guild_id is not None else self.channel_id

    @property
    def key(self) -> tuple[int, int]:
        return (self.server_id, self.user_id)

    def info(self) -> VoiceInfo:
        return VoiceInfo(
            user_id=str(self.user_id),
            channel_id=str(self.channel_id),
            guild_id=None if self.guild_id is None else str(self.guild_id),
            session_id=self.session_id,
            token=self.token,
            **{f: getattr(self, f) for f in _FLAGS},
        )


def _opt_id(value: str | object | None) -> int | None:
    return int(value) if isinstance(value, str) else None


class VoiceRegistry:
    """All channels and voice states of this voice server (survives LVSP reconnects)."""

    def __init__(self, *, dave_required: bool = True) -> None:
        self.dave_required_default = dave_required
        self.channels: dict[int, Channel] = {}
        self._states: dict[tuple[int, int], VoiceState] = {}

    # -- channels --

    def channel(self, channel_id: int) -> Channel:
        """The channel, created with defaults if LVSP never described it (lvsp.md §5)."""
        ch = self.channels.get(channel_id)
        if ch is None:
            ch = Channel(channel_id, DEFAULT_BITRATE, self.dave_required_default)
            self.channels[channel_id] = ch
        return ch

    def apply_channel(self, info: ChannelInfo) -> tuple[ChannelInfo, list[VoiceState]]:
        """INFO(CHANNEL): create/update, or destroy with ``deleted: true``.

        Returns the resulting ChannelInfo to send back and the voice states removed (their
        clients must be disconnected).
        """
        cid = int(info.id)
        if info.deleted is True:
            self.channels.pop(cid, None)
            gone = [s for s in self._states.values() if s.channel_id == cid]
            for s in gone:
                del self._states[s.key]
            return ChannelInfo(info.id, deleted=True), gone
        ch = self.channel(cid)
        if info.bitrate is not UNSET:
            ch.bitrate = info.bitrate
        if info.dave_required is not UNSET:
            ch.dave_required = info.dave_required
        return ch.info(), []

    # -- voice states --

    def request(self, req: VstRequest) -> tuple[VoiceState, VoiceState | None]:
        """VST_REQUEST: the voice state for (server, user) in ``req.channel_id``.

        Same channel again: the existing state is returned unchanged (its client keeps going).
        Another channel: a move, with a fresh token; the old state is returned second so that
        its client can be disconnected (lvsp.md §6).
        """
        cid, gid = int(req.channel_id), _opt_id(req.guild_id)
        key = (gid if gid is not None else cid, int(req.user_id))
        old = self._states.get(key)
        if old is not None and old.channel_id == cid:
            if req.session_id is not UNSET:
                old.session_id = req.session_id
            return old, None
        self.channel(cid)
        sid = req.session_id if req.session_id is not UNSET else secrets.token_hex(16)
        state = VoiceState(int(req.user_id), cid, gid, sid, secrets.token_hex(8))
        self._states[key] = state
        return state, old

    def apply_voice(self, info: VoiceInfo) -> tuple[VoiceInfo, VoiceState | None]:
        """INFO(VST): ``channel_id: null`` removes; otherwise create/move like VST_REQUEST, then
        apply the flags that are set. Returns the VoiceInfo to send back and a state whose client
        must be disconnected (removed or moved away)."""
        if info.channel_id is None:
            gid = _opt_id(info.guild_id)
            gone = self._find_user(int(info.user_id), gid)
            if gone is not None:
                del self._states[gone.key]
            out = VoiceInfo(info.user_id, None, guild_id=info.guild_id)
            if gone is not None:
                out.guild_id = None if gone.guild_id is None else str(gone.guild_id)
                out.session_id = gone.session_id
            return out, gone
        req = VstRequest(info.user_id, info.channel_id, info.guild_id, info.session_id)
        state, moved = self.request(req)
        for f in _FLAGS:
            value = getattr(info, f)
            if value is not UNSET:
                setattr(state, f, value)
        return state.info(), moved

    def _find_user(self, user_id: int, guild_id: int | None) -> VoiceState | None:
        # Without a guild id the removal names only the user: take their only voice state.
        if guild_id is not None:
            return self._states.get((guild_id, user_id))
        mine = [s for s in self._states.values() if s.user_id == user_id]
        return mine[0] if len(mine) == 1 else None

    def authenticate(
        self, server_id: str, user_id: str, session_id: str, token: str
    ) -> VoiceState | None:
        """The voice state a voice op 0/op 7 names, if all four fields match (else None)."""
        if not (is_snowflake(server_id) and is_snowflake(user_id)):
            return None
        state = self._states.get((int(server_id), int(user_id)))
        if state is None:
            return None
        ok_token = hmac.compare_digest(state.token.encode(), token.encode())
        ok_session = hmac.compare_digest(state.session_id.encode(), session_id.encode())
        return state if ok_token and ok_session else None

    def is_current(self, state: VoiceState) -> bool:
        """False once the state was removed or replaced (its client must go)."""
        return self._states.get(state.key) is state

    def states(self) -> Iterator[VoiceState]:
        return iter(list(self._states.values()))

    def snapshot(self) -> list[ChannelInfo | VoiceInfo]:
        """Every channel then every voice state: sent after a fresh IDENTIFY (lvsp.md §7)."""
        out: list[ChannelInfo | VoiceInfo] = [ch.info() for ch in self.channels.values()]
        out.extend(s.info() for s in self._states.values())
        return out
