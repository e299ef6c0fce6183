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
