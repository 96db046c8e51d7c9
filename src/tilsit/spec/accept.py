"""Content negotiation for the simple API (PEP 691), ``Accept`` with q-values.

pip, uv, poetry and pdm send lists such as
``application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2,
text/html;q=0.01``. The highest q wins; on a tie the server's preference
(JSON, then v1 HTML, then plain HTML) decides. No ``Accept`` or ``*/*`` means
text/html, the form every client understands.
"""

from __future__ import annotations

from tilsit.spec.simple import HTML, JSON, MEDIA_TYPES, V1_HTML

__all__ = ["FORMATS", "NotAcceptable", "negotiate"]

# ?format= values (PEP 691 lets servers offer a query parameter).
FORMATS = {JSON: JSON, V1_HTML: V1_HTML, HTML: HTML, "json": JSON, "html": HTML}


class NotAcceptable(ValueError):
    """An ``Accept`` header that admits none of the simple API's media types."""


def _parse(header: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        quality = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        ranges.append((media, quality))
    return ranges


def _quality(media_type: str, ranges: list[tuple[str, float]]) -> tuple[float, int] | None:
    """(q, specificity) of the most specific range that matches ``media_type``, or None."""
    best: tuple[int, float] | None = None
    major = media_type.split("/")[0]
    for media, quality in ranges:
        if media == media_type:
            specificity = 2
        elif media == f"{major}/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    return None if best is None else (best[1], best[0])


def negotiate(accept: str | None) -> str:
    """Pick the media type to answer with, or raise :class:`NotAcceptable`."""
    if accept is None or not accept.strip():
        return HTML
    ranges = _parse(accept)
    # Highest q first; then a type named outright beats one matched by a
    # wildcard; then the server's preference, which for a bare "*/*" is plain
    # HTML (what every client understands) and otherwise JSON.
    chosen: tuple[float, int, int, str] | None = None
    for preference, media_type in enumerate(MEDIA_TYPES):
        match = _quality(media_type, ranges)
        if match is None or match[0] <= 0:
            continue
        key = (match[0], match[1], -preference if match[1] else preference, media_type)
        if chosen is None or key > chosen:
            chosen = key
    if chosen is None:
        raise NotAcceptable(f"none of {', '.join(MEDIA_TYPES)} is acceptable to Accept: {accept}")
    return chosen[3]
