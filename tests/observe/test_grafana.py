"""``deploy/grafana/audionode.json``: valid JSON, a Grafana dashboard, and every metric it
queries is one a real node exports (scraped after it played a track)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from audionode.engine.engine import Engine
from tests.conftest import NodeFactory
from tests.e2e.chain import chain, events_until
from tests.observe.scrape import scrape

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "audionode.json"
_METRIC = re.compile(r"\baudionode_[a-z_]+\b")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def queried() -> set[str]:
    """Every metric name in a panel query or a template variable."""
    data = dashboard()
    exprs = [t["expr"] for p in data["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in data["templating"]["list"] if "definition" in v]
    return {m for e in exprs for m in _METRIC.findall(e)}


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    data = dashboard()
    assert data["title"] and data["uid"] and data["schemaVersion"] >= 30
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for p in data["panels"]:
        assert p["targets"], p["title"]
        assert {"h", "w", "x", "y"} <= p["gridPos"].keys()
    assert len(queried()) >= 15


async def test_every_queried_metric_exists(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Engine, "stats_interval", 0.2)
    async with chain(node_factory) as c:
        await c.load("tone:440?seconds=0.5")
        await events_until(c.ws, "SOURCE_STOP")
        async with c.node.http.get(f"{c.node.url}/nope", headers=c.headers):
            pass
        samples = await scrape(c.node.http, c.node.url)
        exported = {name for name, _ in samples}
    missing = queried() - exported
    assert not missing, f"the dashboard queries metrics the node does not export: {missing}"
