import pytest

from audionode.config import load_config
from audionode.errors import ConfigError


def test_defaults_need_only_a_password() -> None:
    cfg = load_config(env={}, overrides={"password": "pw"})
    got = (cfg.host, cfg.port, cfg.heartbeat_interval, cfg.vc_timeout)
    assert got == ("127.0.0.1", 8000, 15, 300)


def test_missing_password_is_named() -> None:
    with pytest.raises(ConfigError, match="`password` is required"):
        load_config(env={})


def test_example_config_is_valid_and_complete() -> None:
    import json
    from pathlib import Path

    import msgspec

    root = Path(__file__).parent.parent
    example = json.loads((root / "config.json.example").read_text())
    defaults = msgspec.to_builtins(load_config(None, env={}, overrides={"password": "change-me"}))
    defaults["sources"]["plugins"] = ["tone"]  # the example enables the demo source
    assert example == defaults  # every key present, with its default

    readme = (root / "README.md").read_text()

    def keys(d: dict[str, object], prefix: str = "") -> list[str]:
        out: list[str] = []
        for k, v in d.items():
            out += keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
        return out

    undocumented = [
        k
        for k in keys(example)
        if f"`{k}`" not in readme and f"`{k.rsplit('.', 1)[-1]}`" not in readme
    ]
    assert undocumented == []


def test_log_level_is_case_insensitive() -> None:
    assert (
        load_config(env={}, overrides={"password": "pw", "log_level": "debug"}).log_level == "DEBUG"
    )
    assert load_config(
        env={"AUDIONODE_LOG_LEVEL": "Warning"}, overrides={"password": "pw"}
    ).log_level == ("WARNING")
    with pytest.raises(ConfigError, match="config key `log_level`: expected one of"):
        load_config(env={}, overrides={"password": "pw", "log_level": "loud"})


def test_udp_keepalive_reaches_the_engines_sender() -> None:
    """``voice.udp_keepalive`` is documented, so it must be read: by the sender that sends
    keepalives on idle voice connections."""
    from audionode.engine.engine import Engine

    cfg = load_config(env={}, overrides={"password": "pw", "voice": {"udp_keepalive": 0.7}})
    assert Engine(cfg, lambda _: None).sender.keepalive_interval == 0.7
