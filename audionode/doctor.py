"""`audionode doctor` (placeholder until issue 2 lands)."""

from __future__ import annotations

from audionode.config import Config


def run_doctor(cfg: Config) -> int:
    """Print the environment checks; returns 1 when one fails."""
    raise NotImplementedError
