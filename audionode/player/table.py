"""The player's state machine, written as a table: (phase, input) -> next phase + effects.

:class:`audionode.player.player.GuildPlayer` classifies every command and engine event into an
:class:`In` (an engine event about an old serial classifies to nothing and is dropped), looks
the pair up in :data:`TABLE` and runs the step: its checks (which may refuse the command with a
4xx, changing nothing), then the phase change, then its effects in order. A command with no
row is refused with :data:`REFUSALS` (``NOT_PLAYING``); an event with no row is ignored.
After every step an idle player with a queued track feeds itself :attr:`In.HEAD_READY`.

Two things are deliberately *not* phases: ``paused`` (orthogonal: a bot may pause an idle
player so the next track starts paused; stored once, in the player) and the voice
connection (its own two states, connected or not, driven by the engine's voice events).

Phases:

- ``IDLE``: nothing current or being opened (and nothing queued, once settled);
- ``STOPPED``: the bot stopped playback; nothing starts until ``resume``, an enqueue or
  ``previous``. A stopped track is still ``current`` until the engine reports its end;
- ``OPENING``: a track is being opened or is handed to the engine, nothing audible yet (this
  includes the moment between a track's end and its preloaded follow-up's first frame, and a
  ``play now`` after a stop, while the stopped track winds down);
- ``PLAYING``: a current track (paused or not).

``play now`` (``Play``) opens one track outside the queue; in ``PLAYING`` the current track
stays audible until the new one replaces it in the engine (reported ``replaced``), and ends
at once, replaced, if the new one fails to open (its failure is reported after that end).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Phase(enum.Enum):
    IDLE = "idle"
    STOPPED = "stopped"
    OPENING = "opening"
    PLAYING = "playing"


class In(enum.Enum):
    """Inputs: bot commands (upper half) and classified service/engine events (lower half)."""

    ENQUEUE = "enqueue"
    QUEUE_EDITED = "queue edited"
    SKIP = "skip"
    PREVIOUS = "previous"
    SEEK = "seek"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    REPEAT = "repeat"
    PLAY_NOW = "play now"
    # --- events -----------------------------------------------------------------------------
    HEAD_READY = "head ready"
    OPENED = "opened"
    PENDING_FAILED = "pending failed"
    LAST_PENDING_FAILED = "last pending failed"
    REPLACEMENT_FAILED = "play-now failed to open"
    OPENING_STARTED = "opening started"
    NEXT_STARTED = "next started"
    NEAR_END = "near end"
    END_REACHED = "end position reached"
    PENDING_NEAR_END = "near end before its first frame"
    POSITION = "position"
    CURRENT_ENDED = "current ended"
    CURRENT_ENDED_FOLLOWED = "current ended, follow-up pending"
    CURRENT_REPEATS = "current ended, repeat track"
    FADING_ENDED = "fading ended"
    ENGINE_LOST = "engine lost, with a track"
    ENGINE_LOST_IDLE = "engine lost, no track"


COMMANDS = frozenset(
    {In.ENQUEUE, In.QUEUE_EDITED, In.SKIP, In.PREVIOUS, In.SEEK, In.PAUSE, In.RESUME, In.STOP}
    | {In.REPEAT, In.PLAY_NOW}
)


@dataclass(frozen=True, slots=True)
class Step:
    """``checks`` run first and may refuse; then the phase becomes ``next``; then ``effects``
    run in order. Names are methods of the player (``_check_<name>``, ``_do_<name>``)."""

    next: Phase
    effects: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()


REFUSALS: dict[In, tuple[str, str]] = {
    In.SKIP: ("NOT_PLAYING", "nothing is playing"),
    In.SEEK: ("NOT_PLAYING", "nothing is playing"),
}
"""Code and message for a command that has no row in the current phase (a 409)."""

IDLE, STOP, OPEN, PLAY = Phase.IDLE, Phase.STOPPED, Phase.OPENING, Phase.PLAYING
_ALL = (IDLE, STOP, OPEN, PLAY)

TABLE: dict[tuple[Phase, In], Step] = {
    # --- the queue -----------------------------------------------------------------------
    (IDLE, In.ENQUEUE): Step(IDLE, ("add",), ("room",)),
    (STOP, In.ENQUEUE): Step(IDLE, ("add",), ("room",)),  # an enqueue restarts a stopped player
    (OPEN, In.ENQUEUE): Step(OPEN, ("add", "refresh_next"), ("room",)),
    (PLAY, In.ENQUEUE): Step(PLAY, ("add", "refresh_next"), ("room",)),
    **{(ph, In.QUEUE_EDITED): Step(ph, ("refresh_next",)) for ph in _ALL},
    **{(ph, In.REPEAT): Step(ph, ("set_repeat", "refresh_next")) for ph in _ALL},
    (IDLE, In.HEAD_READY): Step(OPEN, ("open_head",)),
    # --- playback commands ---------------------------------------------------------------------
    (PLAY, In.SKIP): Step(PLAY, ("drop_skipped", "mark_skipped", "refresh_next", "engine_skip")),
    (IDLE, In.PREVIOUS): Step(OPEN, ("open_previous",), ("history",)),
    (STOP, In.PREVIOUS): Step(OPEN, ("open_previous",), ("history",)),
    (OPEN, In.PREVIOUS): Step(OPEN, ("requeue_opening", "open_previous"), ("history",)),
    (PLAY, In.PREVIOUS): Step(PLAY, ("requeue_current", "open_previous"), ("history",)),
    (PLAY, In.SEEK): Step(PLAY, ("seek",), ("seekable",)),
    (OPEN, In.SEEK): Step(OPEN, ("seek_reopened",), ("seekable_reopened",)),
    **{(ph, In.PAUSE): Step(ph, ("pause",)) for ph in _ALL},
    (IDLE, In.RESUME): Step(IDLE, ("resume",)),
    (STOP, In.RESUME): Step(IDLE, ("resume",)),
    (OPEN, In.RESUME): Step(OPEN, ("resume",)),
    (PLAY, In.RESUME): Step(PLAY, ("resume",)),
    (IDLE, In.STOP): Step(STOP),
    (STOP, In.STOP): Step(STOP),
    (OPEN, In.STOP): Step(STOP, ("cancel_next", "requeue_opening", "engine_stop")),
    (PLAY, In.STOP): Step(STOP, ("cancel_next", "requeue_opening", "mark_stopped", "engine_stop")),
    # --- one track now, outside the queue (Lavalink's player) ------------------------------------
    (IDLE, In.PLAY_NOW): Step(OPEN, ("open_given",)),
    (STOP, In.PLAY_NOW): Step(OPEN, ("open_given",)),  # a stopped track may still wind down
    (OPEN, In.PLAY_NOW): Step(OPEN, ("open_given",)),  # the track being opened is dropped
    (PLAY, In.PLAY_NOW): Step(PLAY, ("mark_replaced", "open_given")),  # audible until replaced
    (PLAY, In.END_REACHED): Step(PLAY, ("mark_finished", "engine_skip")),
    # --- opening (answers from the service) ----------------------------------------------------
    (OPEN, In.OPENED): Step(OPEN, ("hand_over",)),
    (PLAY, In.OPENED): Step(PLAY, ("hand_over",)),
    (OPEN, In.PENDING_FAILED): Step(OPEN, ("report_failed", "refresh_next")),
    (PLAY, In.PENDING_FAILED): Step(PLAY, ("report_failed", "refresh_next")),
    (OPEN, In.LAST_PENDING_FAILED): Step(IDLE, ("report_failed",)),
    (PLAY, In.REPLACEMENT_FAILED): Step(IDLE, ("end_replaced", "report_failed")),
    # --- engine events about tracks --------------------------------------------------------------
    (OPEN, In.OPENING_STARTED): Step(PLAY, ("promote",)),
    (PLAY, In.OPENING_STARTED): Step(PLAY, ("promote",)),  # previous: the replaced one fades out
    (OPEN, In.NEXT_STARTED): Step(PLAY, ("promote",)),  # gapless: the previous one already ended
    (PLAY, In.NEXT_STARTED): Step(PLAY, ("promote",)),  # crossfade: both audible for a while
    (PLAY, In.NEAR_END): Step(PLAY, ("near_end",)),
    (OPEN, In.PENDING_NEAR_END): Step(OPEN, ("mark_pending_near_end",)),
    (PLAY, In.PENDING_NEAR_END): Step(PLAY, ("mark_pending_near_end",)),
    (PLAY, In.POSITION): Step(PLAY, ("position",)),
    (PLAY, In.CURRENT_ENDED): Step(IDLE, ("finish_current",)),
    (STOP, In.CURRENT_ENDED): Step(STOP, ("finish_current",)),
    (PLAY, In.CURRENT_ENDED_FOLLOWED): Step(OPEN, ("finish_current",)),
    (STOP, In.CURRENT_ENDED_FOLLOWED): Step(STOP, ("finish_current",)),
    (OPEN, In.CURRENT_ENDED): Step(IDLE, ("finish_current",)),  # stopped, then play-now failed
    (IDLE, In.CURRENT_ENDED): Step(IDLE, ("finish_current",)),  # stopped, then resumed at once
    (OPEN, In.CURRENT_ENDED_FOLLOWED): Step(OPEN, ("finish_current",)),  # stopped, then play-now
    (PLAY, In.CURRENT_REPEATS): Step(OPEN, ("finish_current", "reopen_finished")),
    **{(ph, In.FADING_ENDED): Step(ph, ("finish_fading",)) for ph in _ALL},
    # --- the engine worker died: rebuild (the service re-sent Connect first) ------------------
    (IDLE, In.ENGINE_LOST_IDLE): Step(IDLE, ("forget_tracks", "resend_options")),
    (STOP, In.ENGINE_LOST_IDLE): Step(STOP, ("forget_tracks", "resend_options")),
    (STOP, In.ENGINE_LOST): Step(STOP, ("forget_tracks", "resend_options")),
    (OPEN, In.ENGINE_LOST_IDLE): Step(IDLE, ("forget_tracks", "resend_options")),
    (OPEN, In.ENGINE_LOST): Step(OPEN, ("resend_options", "reopen_lost")),
    (PLAY, In.ENGINE_LOST): Step(OPEN, ("resend_options", "reopen_lost")),
}
