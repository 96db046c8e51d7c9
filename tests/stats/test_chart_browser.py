"""The chart in Chromium: styled by stats.css alone (no inline style), fitting a 375 px
phone as well as a 1,280 px screen, in light and dark schemes; screenshots kept."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import chromium  # noqa: F401  (the fixture)
from tests.screenshots import SCREEN_WIDTHS, shoot
from tilsit.index.download_stats import Daily
from tilsit.web.ui.charts import downloads_chart
from tilsit.web.ui.context import STATIC
from tilsit.web.ui.context import _environment as environment
from tilsit.web.ui.stats import DownloadPanel

COUNTS = tuple((n * 7) % 13 if n % 5 else 0 for n in range(90))


def _page(folder: Path) -> Path:
    counts = COUNTS
    daily = Daily(date(2026, 9, 5), counts)
    panel = DownloadPanel(
        totals=daily.totals(),
        window=daily.total(),
        window_days=90,
        rows=[(day.isoformat(), count) for day, count in daily.days() if count],
        api="/_/stats/main/stat-me/recent",
        chart=downloads_chart(daily, "Downloads of stat-me, last 90 days", "totals", "c"),
    )
    partial = environment.get_template("stats/_project.html").render(downloads=panel)
    for css in ("tilsit.css", "stats.css"):
        shutil.copy(STATIC / css, folder / css)
    page = folder / "chart.html"
    page.write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="tilsit.css"><link rel="stylesheet" href="stats.css">'
        f"<title>chart</title></head><body><main>{partial}</main></body></html>"
    )
    return page


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_chart_fits_and_is_styled_from_the_stylesheet(
    chromium: Any,  # noqa: F811
    tmp_path: Path,
    scheme: str,
) -> None:
    url = _page(tmp_path).as_uri()
    for width in SCREEN_WIDTHS:
        context = chromium.new_context(
            viewport={"width": width, "height": 900}, color_scheme=scheme
        )
        try:
            tab = context.new_page()
            tab.goto(url)
            box = tab.locator("svg.stats-chart").bounding_box()
            assert box is not None and 0 < box["width"] <= width and box["height"] > 50
            bars = tab.locator("rect.stats-bar")
            assert bars.count() == sum(1 for count in COUNTS if count)
            accent = tab.evaluate(
                "getComputedStyle(document.documentElement).getPropertyValue('--accent').trim()"
            )
            fill = tab.evaluate("getComputedStyle(document.querySelector('rect.stats-bar')).fill")
            probe = tab.evaluate(
                "(c) => { const e = document.createElement('i'); e.style.color = c;"
                " document.body.append(e); const v = getComputedStyle(e).color; e.remove();"
                " return v; }",
                accent,
            )
            assert fill == probe  # the bars take the page's accent colour from stats.css
            assert tab.evaluate("document.querySelectorAll('[style]').length") == 0
            scroll = tab.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width  # nothing wider than the screen
            shoot(tab, f"stats-chart-{scheme}")
        finally:
            context.close()
