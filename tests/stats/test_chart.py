"""The project page's chart: well-formed SVG, its totals said in title and desc, no
script, no style, nothing from the project but its escaped name; the panels' numbers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from tests.stats.conftest import SDIST_1, WHEEL_1, WHEEL_2, Counted
from tilsit.index.download_stats import Daily, today
from tilsit.web.ui.charts import downloads_chart, nice_ceiling
from tilsit.web.ui.context import _environment as environment
from tilsit.web.ui.stats import project_panel, release_panel

SVG = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # noqa: S314 - our own output, parsed to check it


def _attributes(root: ET.Element) -> set[str]:
    return {name for element in root.iter() for name in element.attrib}


def test_chart_is_well_formed_accessible_svg_without_script_or_style() -> None:
    counts = tuple([0] * 80 + [1, 0, 4, 0, 0, 2, 9, 0, 3, 5])
    daily = Daily(date(2026, 9, 5), counts)
    hostile = '<script>alert(1)</script>" onload="x'
    markup = str(downloads_chart(daily, f"Downloads of {hostile}", "desc 24 in 90 days", "c-1"))
    root = _parse(markup)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c-1-title c-1-desc"
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and title.text == f"Downloads of {hostile}"
    assert desc is not None and desc.text == "desc 24 in 90 days"
    assert "<script" not in markup and root.find(f".//{SVG}script") is None
    names = _attributes(root)
    assert "style" not in names and not any(name.startswith("on") for name in names)
    bars = root.findall(f".//{SVG}rect")
    assert len(bars) == 6  # one per day with downloads
    tips = sorted((bar.find(f"{SVG}title").text or "") for bar in bars)  # type: ignore[union-attr]
    assert "2026-12-03: 5" in tips and "2026-11-30: 9" in tips
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert labels[:3] == ["0", "5", "10"]  # the y axis, to a round 10 above the peak of 9
    assert labels[3] == "2026-09-05" and labels[-1] == "2026-12-03"  # first and last day


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 1), (1, 1), (2, 2), (3, 5), (9, 10), (11, 20), (4999, 5000)]
)
def test_nice_ceiling(value: int, expected: int) -> None:
    assert nice_ceiling(value) == expected


def test_an_id_that_is_not_plain_is_refused() -> None:
    with pytest.raises(ValueError, match="not an id"):
        downloads_chart(Daily(date(2026, 1, 1), (1,)), "t", "d", 'x" onload="y')


def test_project_and_release_panels_render_their_partials(counted: Counted) -> None:
    now = today()
    counted.add(WHEEL_1.filename, now, 3)
    counted.add(SDIST_1.filename, now - timedelta(days=2), 4)
    counted.add(WHEEL_2.filename, now - timedelta(days=20), 6)
    with counted.instance.db.read() as db:
        panel = project_panel(db, counted.project())
        release = release_panel(db, counted.release("1.0"))
    assert panel is not None and release is not None
    assert panel.totals == {"last_day": 3, "last_week": 7, "last_month": 13}
    assert panel.api == "/_/stats/main/stat-me/recent"
    html = environment.get_template("stats/_project.html").render(downloads=panel)
    svg = html[html.index("<svg") : html.index("</svg>") + 6]
    root = _parse(svg)
    desc = root.find(f"{SVG}desc")
    assert desc is not None and desc.text is not None
    assert "3 in the last day, 7 in 7 days, 13 in 30 days, 13 in 90 days" in desc.text
    assert f"Downloads of {counted.project().name}, last 90 days" in html
    assert f"<tr><td>{now.isoformat()}</td><td>3</td></tr>" in html  # the table for readers
    assert 'href="/_/stats/main/stat-me/overall"' in html
    assert "style=" not in html and "<script" not in html

    assert release.totals == {"last_day": 3, "last_week": 7, "last_month": 7}
    assert release.files == {SDIST_1.filename: 4, WHEEL_1.filename: 3}
    page = environment.get_template("stats/_release.html").render(downloads=release)
    assert f'<td class="stats-filename">{WHEEL_1.filename}</td><td>3</td>' in page
    assert environment.get_template("stats/_project.html").render(downloads=None).strip() == ""


def test_large_counts_get_short_axis_labels() -> None:
    root = _parse(str(downloads_chart(Daily(date(2026, 1, 1), (4200, 0, 1)), "t", "d", "c")))
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert labels[:3] == ["0", "2.5k", "5k"]
