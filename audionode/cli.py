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
        ("voiceserver", "start the built-in Discord-compatible voice server"),
    ):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", help="path to config.json")
        sp.add_argument("--host")
        sp.add_argument("--port", type=int)
        sp.add_argument("--password")
    demo = sub.add_parser("demo", help="play three tones through a node on loopback and check them")
    demo.add_argument(
        "--expect",
        type=_frequencies,
        metavar="HZ,HZ,...",
        help="tones the self-check expects instead of the queued ones (to see it fail)",
    )
    return p


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
    try:
        cfg = _load(args)
    except ConfigError as e:
        print(f"audionode: {e}", file=sys.stderr)
        return 2
    if args.command == "doctor":
        from audionode.doctor import run_doctor

        return run_doctor(cfg)
    if args.command == "voiceserver":
        from audionode.voiceserver.app import run_forever as run_voiceserver

        return run_voiceserver(cfg)
    from audionode.server import run_forever

    return run_forever(cfg)
