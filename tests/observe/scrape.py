"""Scraping a real node's ``/metrics`` and reading the samples back (the official parser)."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PASSWORD

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: aiohttp.ClientSession, url: str, auth: str = PASSWORD) -> Samples:
    """Every sample of ``GET /metrics``: ``(name, labels) -> value``."""
    async with http.get(f"{url}/metrics", headers={"Authorization": auth}) as r:
        assert r.status == 200, await r.text()
        assert r.content_type == "text/plain"
        text = await r.text()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when absent, like an unborn counter)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every series whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def counters(samples: Samples) -> Samples:
    """The samples that must never decrease: counters and histogram buckets, counts and sums
    (every observed duration is >= 0)."""
    return {
        k: v for k, v in samples.items() if k[0].endswith(("_total", "_bucket", "_count", "_sum"))
    }
