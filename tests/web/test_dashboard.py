"""Issue 16: ``/dashboard`` and ``/docs`` in a real headless chromium (tests/web/browser.py).

The dashboard test runs the whole chain (a bot, the node, the built-in voice server, a
listening member): it opens the page, enters the password, starts a tone through the REST
API, and sees the guild appear, its position advance and the chart draw; it saves a
screenshot and checks the page logged no error. ``/docs`` must render every operation of
``/openapi.json``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from tests.conftest import PASSWORD, NodeFactory, NodeHarness
from tests.e2e.chain import chain
from tests.web.browser import browser, chromium_path

LOGIN = (
    "document.getElementById('password').value = {password};"
    "document.getElementById('enter').click(); true"
)
CHART_INK = """(() => {
  const c = document.getElementById('chart');
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let blue = 0;
  for (let i = 0; i < px.length; i += 4) if (px[i + 2] > 200 && px[i] < 120) blue++;
  return blue;
})()"""


def _keep(shot: Path, name: str) -> Path:
    """A copy outside pytest's rotating tmp folders, its path printed."""
    kept = Path(tempfile.gettempdir()) / name
    shutil.copyfile(shot, kept)
    print(f"\nscreenshot: {shot}\nkept at: {kept}")
    return kept


async def test_dashboard_shows_a_playing_guild_live(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    chromium_path()
    async with chain(node_factory) as c, browser(tmp_path) as page:
        await page.navigate(f"{c.node.url}/dashboard")
        await page.evaluate(LOGIN.format(password=json.dumps(PASSWORD)))
        await page.wait_for("document.getElementById('link').textContent === 'live'")
        assert await page.evaluate("sessionStorage.getItem('audionode.password')") == PASSWORD
        assert "password" not in await page.evaluate("location.href")
        login = "getComputedStyle(document.getElementById('login')).display"
        assert await page.evaluate(login) == "none"

        await c.load("tone:440?seconds=120")
        row = f"document.querySelector('[data-guild=\"{c.guild}\"]')"
        await page.wait_for(f"{row} && {row}.textContent.includes('PLAYING')")
        text = await page.evaluate(f"{row}.textContent")
        assert "tone" in text and "100%" in text, text
        first = float(await page.wait_for(f"{row} && {row}.dataset.position"))
        await page.wait_for(f"Number({row}.dataset.position) > {first} + 1.5", timeout=20)
        # Voice mode and DAVE of the real connection, the engine's row.
        assert await page.wait_for(f"{row}.textContent.includes('DAVE v1')")
        assert "aead" in (await page.evaluate(f"{row}.textContent"))
        assert await page.evaluate("document.querySelectorAll('[data-worker]').length") >= 1
        # The chart: at least two points of packets/s, drawn in blue ink.
        await page.wait_for(
            "Number(document.getElementById('chart').dataset.points) > 1", timeout=30
        )
        assert await page.evaluate(CHART_INK) > 50
        shot = await page.screenshot(tmp_path / "dashboard.png")
        _keep(shot, "audionode-dashboard.png")
        assert shot.stat().st_size > 10_000
        assert page.errors == [], page.errors


async def test_dashboard_refuses_a_wrong_password(node: NodeHarness, tmp_path: Path) -> None:
    chromium_path()
    async with browser(tmp_path) as page:
        await page.navigate(f"{node.url}/dashboard")
        await page.evaluate(LOGIN.format(password=json.dumps("not the password")))
        error = await page.wait_for("document.getElementById('login-error').textContent")
        assert "password" in error
        assert await page.evaluate("sessionStorage.getItem('audionode.password')") is None
        assert await page.evaluate("document.getElementById('board').classList.contains('hidden')")
        assert page.errors == [], page.errors


async def test_docs_page_renders_every_operation(node: NodeHarness, tmp_path: Path) -> None:
    chromium_path()
    async with node.http.get(f"{node.url}/openapi.json") as r:
        spec = await r.json()
    ids = sorted(op["operationId"] for ops in spec["paths"].values() for op in ops.values())
    async with browser(tmp_path) as page:
        await page.navigate(f"{node.url}/docs")
        count = await page.wait_for("document.getElementById('doc').dataset.operations")
        rendered = await page.evaluate(
            "[...document.querySelectorAll('[data-operation]')].map(e => e.dataset.operation)"
        )
        assert int(count) == len(ids) and sorted(rendered) == ids
        # A body schema is rendered with its fields (the command's bounds included).
        seek = await page.evaluate("document.getElementById('seek').textContent")
        assert "offset" in seek and "maximum" in seek and "VoiceClient-ID" in seek
        shot = await page.screenshot(tmp_path / "docs.png")
        _keep(shot, "audionode-docs.png")
        assert page.errors == [], page.errors
