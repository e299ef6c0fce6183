"""Typed settings: ``config.json`` + ``AUDIONODE_*`` environment + command-line flags.

Validated once at start-up; any problem raises :class:`ConfigError` whose message is one line
naming the key and what was expected (the CLI turns it into exit code 2).

Precedence (last wins): defaults → file → environment → flags. Environment names are
``AUDIONODE_<KEY>`` for top-level keys and ``AUDIONODE_<SECTION>__<KEY>`` for keys in a section
(``AUDIONODE_ENGINE__WORKERS=2``); plain ``PORT`` is honoured for platforms that set it.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from audionode.errors import ConfigError
from audionode.netpolicy import parse_networks
from audionode.validation import explain

EXAMPLE_PASSWORD = "change-me"  # noqa: S105 - a known-bad value we refuse
"""The password shipped in config.json.example; refused on any non-loopback address."""

Port = Annotated[int, Meta(ge=0, le=65535)]
Seconds = Annotated[float, Meta(gt=0)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]


class _Section(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: unknown keys are errors, not silently ignored."""


class AdmissionConfig(_Section):
    """When a worker takes no more players (``engine/admission.py``, docs/ARCHITECTURE.md,
    "Admission and placement"). A new player goes to the least-loaded worker; when every
    worker is at one of these limits it is refused (``NODE_AT_CAPACITY``, HTTP 503)."""

    enabled: bool = True
    """False: place by load but never refuse."""
    max_cpu: Annotated[float, Meta(gt=0, le=4)] = 0.85
    """Cores one worker process may use (its last report, plus the new player's share)."""
    max_tick_ms: Annotated[float, Meta(gt=0, le=20)] = 7.0
    """Mean time of one sender tick (every stream of the worker) out of the 20 ms budget;
    the producer thread needs the rest of the GIL, and a longer tick spreads the streams'
    gaps (10 ms ticks: p99 25.5-27.2 ms; 7 ms: 23.7-24.6 ms, docs/PERFORMANCE.md, "Overload")."""
    max_missed: Annotated[float, Meta(ge=0, le=1)] = 0.01
    """Fraction of a worker's frame slots skipped by its clock (deficit) over the last minute,
    judged once the worker sent at least 10,000 frames in that minute."""
    max_players_per_worker: Annotated[int, Meta(ge=0)] = 0
    """Players placed on one worker at most; 0 = no fixed cap (the measured limits apply)."""
    stream_cost: Annotated[float, Meta(gt=0, le=1)] = 0.003
    """Cores a player is assumed to cost until its worker's report measures it."""
    retry_after: Annotated[int, Meta(ge=1, le=3600)] = 10
    """Seconds a refused client is told to wait (``Retry-After``)."""


class EngineConfig(_Section):
    """The data plane: worker processes and the opus encoder."""

    workers: Annotated[int, Meta(ge=-1)] = -1
    """Engine worker processes; -1 = CPU count - 1 (at least 1); 0 = in-process engine."""
    bitrate: Annotated[int, Meta(ge=8000, le=510000)] = 128000
    """Opus bitrate in bit/s when transcoding."""
    complexity: Annotated[int, Meta(ge=0, le=10)] = 10
    """libopus encoder complexity."""
    crossfade: Annotated[float, Meta(ge=0, le=30)] = 0.0
    """Default crossfade between tracks in seconds (0 = gapless)."""
    preload: Annotated[float, Meta(ge=1, le=60)] = 5.0
    """Seconds before the end of a track at which the next one is opened and buffered."""
    decode_ahead: Annotated[float, Meta(ge=0.5, le=30)] = 3.0
    """Seconds of decoded audio each open track keeps ready (absorbs network stalls)."""
    buffer_frames: Annotated[int, Meta(ge=2, le=10)] = 3
    """Encoded 20 ms frames kept ready for the sender; a volume/filter change waits behind
    them, so 3 keeps changes under 100 ms while leaving 60 ms for scheduling hiccups."""
    native_packets: bool = True
    """Use the native per-packet path (C: DAVE call, RTP, AEAD, sendmmsg once per tick) when it
    is built; false forces the pure-Python path (docs/decisions/0017-native-packet-path.md)."""
    native_tick: bool = True
    """With the native packet path: serve every steady passthrough stream in one native call
    per tick (docs/decisions/0020-native-tick.md); false keeps the sender's per-stream Python."""
    watchdog_timeout: Annotated[float, Meta(ge=0.5, le=60)] = 1.5
    """Seconds a worker's event loop or producer thread may go without progress before the
    watchdog kills and restarts that worker (docs/SECURITY.md, "Engine")."""
    max_message_bytes: Annotated[int, Meta(ge=1 << 20, le=1 << 30)] = 32 << 20
    """Largest command sent to an engine (a track held in memory travels whole); a larger
    one fails that track with an error event instead of reaching the worker."""
    max_event_bytes: Annotated[int, Meta(ge=64 << 10, le=64 << 20)] = 1 << 20
    """Largest event a worker sends back; longer texts are cut, a worker that sends more is
    restarted."""
    max_pending_commands: Annotated[int, Meta(ge=16, le=1_000_000)] = 1000
    """Commands kept for a worker being restarted; further ones are refused with an error."""
    max_pending_bytes: Annotated[int, Meta(ge=1 << 20, le=1 << 32)] = 64 << 20
    """Bytes of commands kept for a worker being restarted."""
    realtime_priority: Annotated[int, Meta(ge=0, le=99)] = 0
    """``SCHED_FIFO`` priority (1-99) of each worker process's event-loop thread, the one that
    runs the 20 ms sender clock; 0 = normal scheduling. Needs ``CAP_SYS_NICE`` or a high enough
    ``RLIMIT_RTPRIO``; without it the worker logs a warning and runs at normal priority
    (``engine/rtprio.py``, docs/decisions/0023-realtime-loop-thread.md)."""
    share_live: bool = True
    """Players of one worker playing the same live stream with the same volume and filters
    share one decode/filter/encode (``media/fanout.py``, docs/decisions/0018-shared-encode.md)."""
    admission: AdmissionConfig = msgspec.field(default_factory=AdmissionConfig)
    """Placement by load and refusal at capacity."""


class HttpSourceConfig(_Section):
    enabled: bool = True
    allow_private: bool = False
    """Allow loopback and private-network URLs (off by default: SSRF protection)."""
    allow_networks: list[str] = msgspec.field(default_factory=list)
    """CIDR networks fetched from even though they are not public (an internal media server),
    while everything else non-public stays refused."""
    timeout: Seconds = 10.0

    def __post_init__(self) -> None:
        try:
            parse_networks(self.allow_networks)
        except ValueError as e:
            raise ValueError(f"`allow_networks`: {e}") from None


class YtdlpSourceConfig(_Section):
    enabled: bool = True
    processes: Annotated[int, Meta(ge=1, le=32)] = 2
    """Size of the extraction process pool."""
    timeout: Seconds = 30.0
    """Seconds an extraction may take before it is abandoned."""
    nice: Annotated[int, Meta(ge=0, le=19)] = 10
    """Niceness of the extraction processes: yt-dlp is background work and must not take a
    core from an engine worker on a busy machine (issue 7, ``bench/streams.py --stress``)."""


class MediaLimitsConfig(_Section):
    """Bounds on every input, checked by the probe and by the engine's reader."""

    min_sample_rate: Annotated[int, Meta(ge=1000, le=48000)] = 8000
    max_sample_rate: Annotated[int, Meta(ge=48000, le=768000)] = 384000
    max_channels: Annotated[int, Meta(ge=2, le=64)] = 8
    max_playlist_bytes: Annotated[int, Meta(ge=4096, le=64 << 20)] = 1 << 20


class LocalSourceConfig(_Section):
    enabled: bool = False
    roots: list[str] = msgspec.field(default_factory=list)
    """Folders whose files may be played; nothing outside them is ever opened."""


class SourcesConfig(_Section):
    http: HttpSourceConfig = msgspec.field(default_factory=HttpSourceConfig)
    ytdlp: YtdlpSourceConfig = msgspec.field(default_factory=YtdlpSourceConfig)
    local: LocalSourceConfig = msgspec.field(default_factory=LocalSourceConfig)
    media: MediaLimitsConfig = msgspec.field(default_factory=MediaLimitsConfig)
    probe_processes: Annotated[int, Meta(ge=1, le=16)] = 2
    """Processes that probe media before it is queued (the control process never loads av)."""
    dns_threads: Annotated[int, Meta(ge=1, le=64)] = 4
    """Threads resolving names for the control process's fetches."""
    plugins: list[str] = msgspec.field(default_factory=list)
    """Module names to load from the repository's plugins/ folder, e.g. ["tone"]."""
    plugins_dir: str = "plugins"
    plugin_options: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """Options handed to each plugin by name, e.g. {"tone": {"max_seconds": 60}}."""
    default_search: str = "ytsearch"
    """Prefix for a query that is neither a URL nor prefixed (``never gonna`` →
    ``ytsearch:never gonna``); empty to refuse such queries."""


class VoiceConfig(_Section):
    """The node's Discord voice client."""

    dave: bool = True
    """Offer DAVE (max_dave_protocol_version 1). Discord closes non-DAVE clients with 4017."""
    connect_timeout: Seconds = 10.0
    udp_keepalive: Seconds = 5.0
    receive: bool = False
    """Hear the other members: per-user jitter buffer, DAVE decrypt, opus decode with PLC/FEC
    on a receive thread of each engine (``engine/receive.py``)."""


class RecordingConfig(_Section):
    """``POST /record``: per-user and mixed Ogg/Opus files of what a voice client hears."""

    path: str | None = None
    """Folder under which each recording gets a folder of its own; null = recording is off."""
    max_seconds: Annotated[float, Meta(gt=0, le=86400)] = 3600.0
    """Length of one recording at most; it then stops by itself (reason ``max_seconds``)."""
    max_bytes: Annotated[int, Meta(ge=1 << 16, le=1 << 40)] = 256 << 20
    """Bytes written by one recording (all its files) at most; then it stops (``max_bytes``)."""
    bitrate: Annotated[int, Meta(ge=8000, le=510000)] = 64000
    """Opus bitrate (bit/s) of each recorded file."""


class LayersConfig(_Section):
    """``POST /layers``: sources played over the music."""

    max_per_player: Annotated[int, Meta(ge=1, le=64)] = 4
    """Layers playing at once in one voice client (a VDP channel's peer audio counts as one)."""


class VdpConfig(_Section):
    """The seed-004 voice bridge (docs/protocols/vdp.md): a UDP channel per room."""

    enabled: bool = False
    """Accept ``POST /vdp/channels`` (needs ``voice.receive``); off: NO_CALL_CAPABILITY."""
    host: str = "127.0.0.1"
    """Address the channels' UDP sockets bind to (one ephemeral port per channel)."""
    advertise_host: str = ""
    """Host given to the voice bridge in the channel's ``address``; empty = ``host``."""
    max_channels: Annotated[int, Meta(ge=1, le=4096)] = 16
    """Channels open at once on the node; beyond: OUT_OF_CAPACITY."""
    allowed_peers: list[str] = msgspec.field(default_factory=list)
    """Networks (CIDR) the node may send audio to; a peer outside is refused (403). Empty:
    no peer is allowed, so enabling VDP takes naming the voice bridge's network."""
    peer_timeout: Annotated[float, Meta(ge=1, le=3600)] = 30.0
    """Seconds without a valid datagram from the peer after which the channel is closed
    (VDP_CHANNEL_CLOSED, reason ``peer_timeout``); the peer sends keepalives when silent."""
    bitrate: Annotated[int, Meta(ge=8000, le=510000)] = 64000
    """Opus bitrate (bit/s) of the channel's audio sent to the peer."""


class VoiceServerConfig(_Section):
    """The built-in Discord-compatible voice server (``audionode voiceserver``)."""

    host: str = "127.0.0.1"
    port: Port = 8001
    """Voice gateway + LVSP websocket port."""
    udp_port: Port = 0
    """UDP media port; 0 picks a free one."""
    public_ip: str = "127.0.0.1"
    """The address voice clients are told to send UDP to."""
    lvsp_token: str = ""
    """The LVSP shared secret; the voice server refuses to start without one."""
    dave_required: bool = True
    """Default of a channel's ``dave_required`` (clients without DAVE are closed with 4017)."""
    public_endpoint: str = ""
    """``host:port`` of the voice gateway sent in LVSP READY; empty = ``public_ip:port``."""
    heartbeat_interval: Seconds = 13.75
    """Voice gateway op 8 Hello interval."""
    lvsp_heartbeat_interval: Seconds = 30.0
    """LVSP HELLO interval; a client silent for 1.5 intervals is closed with 4000."""
    stats_token: str = ""
    """Authorization for GET /stats; empty = the LVSP token."""
    identify_timeout: Seconds = 10.0
    """A voice gateway or LVSP socket that has not identified (or resumed) by then is closed
    (voice 4003, LVSP 4000)."""
    max_frame_bytes: Annotated[int, Meta(ge=4096, le=16 << 20)] = 262144
    """Largest websocket frame accepted on either socket; a larger one is closed with 1009."""
    udp_discovery_rate: Annotated[float, Meta(gt=0)] = 50.0
    """IP discovery replies per second per source IP (bursts of as many)."""
    lvsp_resume_window: Seconds = 60.0
    """Seconds a dropped LVSP session stays resumable before it is forgotten."""
    lvsp_max_detached: Annotated[int, Meta(ge=1, le=1024)] = 16
    """Dropped LVSP sessions kept for RESUME at once; a new IDENTIFY forgets the oldest."""
    lvsp_max_kept: Annotated[int, Meta(ge=1, le=100000)] = 1000
    """Unacknowledged INFOs kept per LVSP session for RESUME (older ones: RESUME gets 4003)."""


def load_voiceserver_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """The configuration ``audionode voiceserver`` runs with: the same file and environment as
    :func:`load_config`, ``overrides`` applied to the ``voiceserver`` section (the command-line
    flags, None = not given), and no ``password``: that is the node's secret, not the voice
    server's. Use only ``voiceserver`` and ``log_level`` of the result."""
    data: dict[str, Any] = _read_file(Path(path)) if path is not None else {}
    _apply_env(data, os.environ if env is None else env)
    section = data.setdefault("voiceserver", {})
    if not isinstance(section, dict):
        raise ConfigError("config key `voiceserver`: expected an object")
    section.update({k: v for k, v in (overrides or {}).items() if v is not None})
    data.setdefault("password", "")
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as e:
        raise ConfigError(_explain(e)) from None


class ControlConfig(_Section):
    """Bounds of the control plane (docs/SECURITY.md, "Control plane"): whatever a bot sends,
    the node answers a precise 4xx or close code instead of growing without end."""

    max_body_bytes: Annotated[int, Meta(ge=1024, le=1 << 30)] = 1 << 20
    """Largest HTTP request body; a larger one is refused with 413."""
    max_json_depth: Annotated[int, Meta(ge=2, le=1000)] = 32
    """Deepest nesting of arrays/objects in a JSON body or frame; deeper is a 400 / error."""
    max_frame_bytes: Annotated[int, Meta(ge=1024, le=1 << 30)] = 1 << 20
    """Largest websocket frame a bot may send; a larger one closes the socket with 1009."""
    max_outbound_bytes: Annotated[int, Meta(ge=1 << 16, le=1 << 30)] = 4 << 20
    """Bytes queued for one websocket that its peer has not read; beyond, the socket is
    closed with 4008 (the session lives on, its unsent events kept)."""
    max_kept_bytes: Annotated[int, Meta(ge=1024, le=1 << 30)] = 4 << 20
    """Encoded bytes of events kept per session while no socket is attached (oldest dropped)."""
    max_sessions_per_user: Annotated[int, Meta(ge=1)] = 256
    """Sessions (shards) one bot user may hold at once."""
    max_players: Annotated[int, Meta(ge=1)] = 10000
    """Voice clients the node holds at once, over all sessions."""
    max_queue: Annotated[int, Meta(ge=1)] = 10000
    """Entries in one guild's queue."""
    token_ttl: Annotated[float, Meta(ge=60)] = 86400.0
    """Seconds a track token stays valid (tokens are re-signed whenever a track is sent)."""


class LavalinkConfig(_Section):
    """The Lavalink v4 front door (``/v4/...``, ``/version``; docs/LAVALINK.md)."""

    player_update_interval: Annotated[float, Meta(ge=0.2, le=3600)] = 5.0
    """Seconds between ``playerUpdate`` messages for a player with a track (Lavalink: 5)."""
    stats_interval: Annotated[float, Meta(ge=1, le=3600)] = 60.0
    """Seconds between ``stats`` messages on a Lavalink websocket (Lavalink: 60)."""
    resume_timeout: Annotated[float, Meta(ge=0)] = 60.0
    """Seconds a resumable session waits for its client, until ``PATCH /v4/sessions`` sets
    another (Lavalink: 60). Sessions are resumable only once the client enables it."""
    max_resume_timeout: Annotated[float, Meta(ge=0)] = 3600.0
    """Largest ``timeout`` a client may set on its session (a larger one is a 400)."""
    track_stuck_threshold: Annotated[float, Meta(gt=0, le=3600)] = 10.0
    """Seconds a playing, connected, unpaused player may send no audio before a
    ``TrackStuckEvent`` (Lavalink: 10)."""
    cleanup_threshold: Annotated[float, Meta(gt=0, le=86400)] = 60.0
    """Seconds a track may stay current while its player has no voice connection; then it
    is stopped and ends with ``cleanup`` (Lavalink: 60)."""


STATE_FILE = "audionode-state.db"
"""The state file's name beside the config file (``state.path = ""``)."""


class StateConfig(_Section):
    """The node's state file (docs/PERSISTENCE.md): what survives a restart of the node."""

    path: str | None = ""
    """The SQLite state file: sessions, voice clients with their voice tokens, queues,
    positions, options, kept events, the track-token secret. ``""`` = ``audionode-state.db``
    beside the config file (without a config file: none); ``null`` = keep nothing (track
    tokens and sessions die with the process)."""
    checkpoint_interval: Annotated[float, Meta(ge=0.1, le=1.0)] = 0.5
    """Seconds between checkpoints of the playing tracks' positions: after a ``kill -9`` a
    track resumes at most this much before where it was."""


class Config(_Section):
    """The whole node configuration; see README.md for every key."""

    password: str
    host: str = "127.0.0.1"
    port: Port = 8000
    heartbeat_interval: Seconds = 15.0
    vc_timeout: Annotated[float, Meta(ge=0)] = 300.0
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"
    """``text``: one human line per record; ``json``: one JSON object per line (ts, level,
    logger, msg, guild, node, exc) for log shippers (docs/OPERATIONS.md)."""
    node_name: Annotated[str, Meta(max_length=64, pattern=r"^[A-Za-z0-9._:-]*$")] = ""
    """Names this node in every log line; ``""``: the machine's host name and the port."""
    metrics_token: Annotated[str, Meta(max_length=256)] = ""
    """A bearer token that may read ``GET /metrics`` (and nothing else) besides the password;
    ``""``: only the password (docs/OPERATIONS.md)."""
    max_kept_events: Annotated[int, Meta(ge=1)] = 1000
    """Events kept per session while no bot socket is attached; older ones are dropped."""
    state: StateConfig = msgspec.field(default_factory=StateConfig)
    control: ControlConfig = msgspec.field(default_factory=ControlConfig)
    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)
    sources: SourcesConfig = msgspec.field(default_factory=SourcesConfig)
    voice: VoiceConfig = msgspec.field(default_factory=VoiceConfig)
    recording: RecordingConfig = msgspec.field(default_factory=RecordingConfig)
    layers: LayersConfig = msgspec.field(default_factory=LayersConfig)
    vdp: VdpConfig = msgspec.field(default_factory=VdpConfig)
    voiceserver: VoiceServerConfig = msgspec.field(default_factory=VoiceServerConfig)
    lavalink: LavalinkConfig = msgspec.field(default_factory=LavalinkConfig)


def _explain(err: msgspec.ValidationError) -> str:
    """One line that leads with the config key."""
    key, problem = explain(err, Config)
    if problem == "is required":
        return f"config key `{key}` is required (expected a string)"
    if problem.startswith("is unknown"):
        return f"config key `{key}` is unknown (see config.json.example for the valid keys)"
    return f"config key `{key or '(root)'}`: {problem}"


def _field_types(struct: type[Struct]) -> dict[str, Any]:
    return {f.name: f.type for f in msgspec.structs.fields(struct)}


def _env_value(raw: str, typ: Any) -> Any:
    """Environment values are text: keep them for str fields, else parse as JSON or scalar."""
    if typ is str:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    top = _field_types(Config)
    if "PORT" in env:
        data["port"] = _env_value(env["PORT"], int)
    for name, raw in env.items():
        if not name.startswith("AUDIONODE_"):
            continue
        parts = name[len("AUDIONODE_") :].lower().split("__")
        if len(parts) == 1 and parts[0] in top:
            data[parts[0]] = _env_value(raw, top[parts[0]])
        elif len(parts) == 2 and parts[0] in top and isinstance(top[parts[0]], type):
            section = data.setdefault(parts[0], {})
            if isinstance(section, dict):
                sub = _field_types(top[parts[0]]).get(parts[1], Any)
                section[parts[1]] = _env_value(raw, sub)
        else:
            raise ConfigError(f"environment variable {name} names no config key")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"config file {path}: cannot read ({e.strerror})") from None
    except ValueError as e:
        raise ConfigError(f"config file {path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a JSON object at the top level")
    return data


def is_loopback(host: str) -> bool:
    """True for localhost and loopback literals (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the validated :class:`Config`; raise :class:`ConfigError` with one clear line."""
    data: dict[str, Any] = _read_file(Path(path)) if path is not None else {}
    _apply_env(data, os.environ if env is None else env)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if "state_dir" in data:
        raise ConfigError(
            "config key `state_dir` was replaced by `state.path` (one SQLite file holds all "
            "the node's state, docs/PERSISTENCE.md)"
        )
    if isinstance(data.get("log_level"), str):
        data["log_level"] = data["log_level"].upper()  # "info" and "INFO" alike
    try:
        cfg = msgspec.convert(data, Config)
    except msgspec.ValidationError as e:
        raise ConfigError(_explain(e)) from None
    if cfg.state.path == "" and path is not None:  # without a config file "" stays: no file
        cfg.state.path = str(Path(path).parent / STATE_FILE)
    if not cfg.password:
        raise ConfigError("config key `password` must not be empty")
    for cidr in cfg.vdp.allowed_peers:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigError(
                f"config key `vdp.allowed_peers`: {cidr!r} is not a network (CIDR)"
            ) from None
    if cfg.password == EXAMPLE_PASSWORD and not is_loopback(cfg.host):
        raise ConfigError(
            f"config key `password`: the example password is refused on non-loopback host "
            f"{cfg.host!r}; set a password of your own"
        )
    return cfg
