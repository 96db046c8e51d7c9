"""The downloads chart: inline SVG drawn on the server, no script and no style attribute.

The page's CSP (``style-src 'self'``) forbids inline styles, so the chart carries only
presentation attributes and classes that ``static/stats.css`` styles; its colours come
from ``currentColor`` and the page's CSS variables, so dark mode applies. Only numbers and
ISO dates are written into it, plus the title (escaped here).

Accessible: ``role="img"`` with ``aria-labelledby`` naming its ``<title>`` and ``<desc>``
(which say the totals); the page shows the numbers as a table as well.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from markupsafe import Markup

from tilsit.index.download_stats import Daily

__all__ = ["HEIGHT", "WIDTH", "downloads_chart", "nice_ceiling"]

WIDTH = 720
HEIGHT = 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 12, 30


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 times a power of ten that is at least ``value`` (at least 1)."""
    if value <= 1:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _count_label(value: float) -> str:
    """An axis label at most four characters wide: 2.5k, 10k, 1M."""
    for unit, size in (("M", 1_000_000), ("k", 1000)):
        if value >= size:
            return _number(value / size) + unit
    return _number(value)


def downloads_chart(daily: Daily, title: str, description: str, element_id: str) -> Markup:
    """A bar per day of ``daily``, a y axis with whole-number gridlines and dated x ticks.

    ``element_id`` must be unique in the page (it names the title and desc elements); it
    is made of letters, digits and hyphens by the caller.
    """
    if not element_id.replace("-", "").isalnum():
        raise ValueError(f"{element_id!r} is not an id made of letters, digits and hyphens")
    days = daily.days()
    peak = nice_ceiling(max(daily.counts, default=0))
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(len(days), 1)
    bottom = _TOP + plot_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="stats-chart" role="img"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"'
        f' preserveAspectRatio="xMinYMin meet"'
        f' aria-labelledby="{element_id}-title {element_id}-desc">',
        f'<title id="{element_id}-title">{escape(title)}</title>',
        f'<desc id="{element_id}-desc">{escape(description)}</desc>',
    ]
    # Gridlines and y labels at 0, half the scale and the scale; downloads are whole, so a
    # scale of 1 or 5 has no middle line (0.5 or 2.5 downloads mean nothing).
    for value in (0, peak // 2, peak) if peak % 2 == 0 else (0, peak):
        y = bottom - plot_h * (value / peak)
        parts.append(
            f'<line class="stats-grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}"'
            f' y1="{_number(y)}" y2="{_number(y)}" stroke="currentColor"/>'
        )
        parts.append(
            f'<text class="stats-label" x="{_LEFT - 6}" y="{_number(y + 4)}"'
            f' text-anchor="end" fill="currentColor">{_count_label(value)}</text>'
        )
    parts.append('<g class="stats-bars">')
    for position, (day, count) in enumerate(days):
        if count <= 0:
            continue
        height = plot_h * count / peak
        x = _LEFT + position * slot + slot * 0.1
        parts.append(
            f'<rect class="stats-bar" x="{_number(x)}" y="{_number(bottom - height)}"'
            f' width="{_number(slot * 0.8)}" height="{_number(height)}">'
            f"<title>{day.isoformat()}: {count}</title></rect>"
        )
    parts.append("</g>")
    # The x axis, and a dated tick at the first day, every 30 days, and the last.
    parts.append(
        f'<line class="stats-axis" x1="{_LEFT}" x2="{WIDTH - _RIGHT}"'
        f' y1="{bottom}" y2="{bottom}" stroke="currentColor"/>'
    )
    ticks = sorted({0, *range(30, len(days) - 10, 30), len(days) - 1}) if days else []
    for position in ticks:
        x = _LEFT + position * slot + slot / 2
        anchor = "start" if position == 0 else "end" if position == len(days) - 1 else "middle"
        if position == 0:
            x = _LEFT
        elif position == len(days) - 1:
            x = WIDTH - _RIGHT
        parts.append(
            f'<text class="stats-label" x="{_number(x)}" y="{HEIGHT - 10}"'
            f' text-anchor={quoteattr(anchor)} fill="currentColor">'
            f"{days[position][0].isoformat()}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built above from numbers, dates and escaped text
