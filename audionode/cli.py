"""Command line: ``audionode run | voiceserver | doctor | demo | --version``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from audionode import __version__
from audionode.config import Config, load_config
from audionode.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audionode", description="Audio node server for Discord bots.")
    p.add_argument("--version", action="version", version=f"audionode {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (
        ("run", "start the node"),
        ("doctor", "check codecs, DAVE, yt-dlp and the port"),
    ):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", help="path to config.json")
        sp.add_argument("--host")
        sp.add_argument("--port", type=int)
        sp.add_argument("--password")
    _voiceserver_parser(sub)
    demo = sub.add_parser("demo", help="play three tones through a node on loopback and check them")
    demo.add_argument(
        "--expect",
        type=_frequencies,
        metavar="HZ,HZ,...",
        help="tones the self-check expects instead of the queued ones (to see it fail)",
    )
    return p


_VOICESERVER_FLAGS = ("host", "port", "udp_port", "public_ip", "lvsp_token")


def _voiceserver_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    vs = sub.add_parser(
        "voiceserver",
        help="start the built-in Discord-compatible voice server",
        description="Flags override the config file's `voiceserver` section; the node's "
        "password is not needed.",
    )
    vs.add_argument("--config", help="path to config.json (only `voiceserver.*` and log_level)")
    vs.add_argument("--host", help="listen address of the voice gateway + LVSP (HTTP) port")
    vs.add_argument("--port", type=int, help="voice gateway + LVSP port")
    vs.add_argument("--udp-port", type=int, help="UDP media port (0 = any free port)")
    vs.add_argument("--public-ip", help="the address voice clients are told to send UDP to")
    vs.add_argument(
        "--lvsp-token",
        help="the LVSP shared secret (visible to other local users in the process list: "
        "prefer AUDIONODE_VOICESERVER__LVSP_TOKEN or the config file)",
    )


def _run_voiceserver(args: argparse.Namespace) -> int:
    from audionode.config import load_voiceserver_config

    flags = {k: getattr(args, k) for k in _VOICESERVER_FLAGS}
    try:
        cfg = load_voiceserver_config(args.config, overrides=flags)
    except ConfigError as e:
        print(f"audionode: {e}", file=sys.stderr)
        return 2
    from audionode.voiceserver.app import run_forever as run_voiceserver

    return run_voiceserver(cfg.voiceserver, cfg.log_level)


def _frequencies(text: str) -> list[float]:
    try:
        return [float(f) for f in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected Hz values joined by commas, got {text!r}"
        ) from None


def _load(args: argparse.Namespace) -> Config:
    return load_config(
        args.config,
        overrides={"host": args.host, "port": args.port, "password": args.password},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``audionode`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":  # needs no config: it makes its own
        from audionode.demo.run import main as run_demo

        return run_demo(args.expect)
    if args.command == "voiceserver":  # needs no node password
        return _run_voiceserver(args)
    try:
        cfg = _load(args)
    except ConfigError as e:
        print(f"audionode: {e}", file=sys.stderr)
        return 2
    if args.command == "doctor":
        from audionode.doctor import run_doctor

        return run_doctor(cfg)
    from audionode.server import run_forever

    return run_forever(cfg)
