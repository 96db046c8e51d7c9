"""Issue 14's walk in Chromium, as a developer browses: home → index → project →
version, a typo in the search box, an install command copied, the yanked badge and the
downloads chart, with screenshots of each page at 1,280 and 375 px."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browse.conftest import PASSWORD, create_account, twine, wheel
from tests.clients.tools import Sandbox, describe
from tests.conftest import LiveServer
from tests.pagechecks import CONTRAST_JS
from tests.screenshots import SCREEN_WIDTHS, shoot

pytestmark = pytest.mark.clients

# Every kind of text on a project or release page: headings, badges, commands, tables,
# the README, the details, the downloads totals and the chart's caption.
PAGE_TEXT = (
    "main h1, main h2, .project-summary, .badge, .snippets .command, th, td, .readme p,"
    " .readme code, .hint, .project-meta dt, .project-meta dd, .stats-totals dt,"
    " .stats-totals dd, .stats-caption, main a, main button"
)

README = "# Widgetry\n\nWidgets for **everyone**.\n\n```python\nimport widgetry\n```\n"


def _downloaded(server: LiveServer, tmp_path: Path) -> None:
    """One real pip download, then the counter's batch (every few seconds) written."""
    sandbox = Sandbox(tmp_path / "sandbox")
    index = f"{server.url}/main/simple/"
    result = sandbox.run(
        "pip", "download", "--no-deps", "--index-url", index, "-d", "d", "widgetry"
    )
    assert result.returncode == 0, describe(result)
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/_/stats/main/widgetry/recent").json()["data"]["last_day"] < 1:
        assert time.monotonic() < deadline, "the download was not counted within 30 s"
        time.sleep(0.5)


def test_walk_home_index_project_version_search_copy_and_chart(
    mail_server: LiveServer, chromium: Any, tmp_path: Path
) -> None:
    server = mail_server
    create_account(server.settings, "wendy", PASSWORD)
    token = server.token("wendy")
    twine(
        server,
        token,
        tmp_path / "dists",
        wheel("widgetry", "1.0", README, "text/markdown"),
        wheel("widgetry", "1.1", README, "text/markdown"),
    )
    server.cli("yank", "widgetry", "1.0", "--index", "main", "--reason", "broke on Windows")
    _downloaded(server, tmp_path)

    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    page.set_default_timeout(20_000)
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        page.goto(f"{server.url}/")
        shots = [shoot(page, "walk-home")]
        page.get_by_role("link", name="main", exact=True).first.click()
        page.wait_for_url("**/main/")
        shots.append(shoot(page, "walk-index"))
        page.get_by_role("link", name="widgetry", exact=True).first.click()
        page.wait_for_url("**/main/project/widgetry/")
        assert page.locator(".readme").get_by_role("heading", name="Widgetry").is_visible()
        chart = page.locator("svg.stats-chart")
        assert chart.is_visible()
        assert "1" in (page.locator(".stats-totals").inner_text())
        shots.append(shoot(page, "walk-project"))

        page.get_by_role("link", name="1.0", exact=True).click()
        page.wait_for_url("**/main/project/widgetry/1.0/")
        assert "Yanked: broke on Windows" in page.locator(".project-head").inner_text()
        page.get_by_role("button", name="Copy the pip command").click()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == f"pip install --index-url {server.url}/main/simple/ widgetry==1.0"
        shots.append(shoot(page, "walk-release"))

        page.goto(f"{server.url}/")
        page.get_by_label("Search projects").fill("widgtry")  # a letter short
        page.get_by_role("button", name="Search").click()
        page.wait_for_url("**/_/search?*")
        shots.append(shoot(page, "walk-search"))
        page.get_by_role("link", name="widgetry", exact=True).first.click()
        page.wait_for_url("**/main/project/widgetry/")

        # Each page again on a phone: no sideways scrolling.
        page.set_viewport_size({"width": SCREEN_WIDTHS[1], "height": 800})
        for path, name in (
            ("/", "walk-home"),
            ("/main/", "walk-index"),
            ("/main/project/widgetry/", "walk-project"),
            ("/main/project/widgetry/1.0/", "walk-release"),
            ("/_/search?q=widgtry", "walk-search"),
        ):
            page.goto(server.url + path)
            shots.append(shoot(page, name))
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= SCREEN_WIDTHS[1], (path, width)

        # Both colour schemes: every kind of text on the project and release pages at 7:1.
        page.set_viewport_size({"width": SCREEN_WIDTHS[0], "height": 900})
        too_low: list[tuple[str, str, dict[str, object]]] = []
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            for path, name in (
                ("/main/project/widgetry/", "walk-project"),
                ("/main/project/widgetry/1.0/", "walk-release"),
            ):
                page.goto(server.url + path)
                shots.append(shoot(page, f"{name}-{scheme}"))
                measured = page.evaluate(CONTRAST_JS, PAGE_TEXT)
                assert len(measured) > 20, (scheme, path)
                too_low += [(scheme, path, m) for m in measured if m["ratio"] < 7]
            if scheme == "dark":
                assert page.evaluate("getComputedStyle(document.body).backgroundColor") != (
                    "rgb(255, 255, 255)"
                )
        assert too_low == []
    finally:
        context.close()
    assert violations == []
    assert len(shots) == 14 and all(shot.stat().st_size > 1000 for shot in shots)
