"""A release's description (its README) as HTML, the way PyPI renders it.

warehouse's ``utils/readme.py`` is followed: the renderer is chosen by the
``Description-Content-Type`` (``text/markdown`` with its ``variant`` parameter,
GFM or CommonMark; ``text/x-rst``; ``text/plain``; reStructuredText when the
field is missing or empty; plain text for any other type), and every renderer of
``readme_renderer`` passes its output through nh3 with PyPI's allow-list, so no
script, event attribute or ``javascript:`` URL survives. Where PyPI falls back to
the plain-text renderer when reStructuredText (or Markdown) cannot be rendered,
this page shows the raw text, escaped, under a note that says why, so an author
sees that their README failed rather than a silently flattened one.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

import readme_renderer.markdown
import readme_renderer.rst
import readme_renderer.txt
from markupsafe import Markup

__all__ = ["Readme", "render_readme", "renders"]

_MARKDOWN_VARIANTS = ("GFM", "CommonMark")


@dataclass(frozen=True, slots=True)
class Readme:
    """What the page shows of a description: HTML, or the raw text with a note, or nothing."""

    html: Markup | None  # sanitised HTML; None when it is shown as raw text (or empty)
    raw: str  # the description as written, for the fallback (escaped by the template)
    kind: str  # "markdown", "rst" or "plain": what it was rendered as
    failed: bool  # the renderer for its content type could not render it

    @property
    def empty(self) -> bool:
        return not self.raw.strip()


# How many descriptions were rendered, so that a test can see the page cache at work.
_renders = 0


def renders() -> int:
    """How many descriptions this process has rendered (tests of the page cache read it)."""
    return _renders


def _content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """The media type in lower case and its parameters, as ``email`` parses a header."""
    message = Message()
    message["content-type"] = value or ""
    media = message.get_content_type() if value and value.strip() else ""
    params = {k.lower(): v for k, v in (message.get_params() or [])[1:] if isinstance(v, str)}
    return media, params


def render_readme(description: str, content_type: str | None) -> Readme:
    """Render ``description`` by its ``Description-Content-Type`` (see the module text)."""
    global _renders
    _renders += 1
    if not description.strip():
        return Readme(None, "", "plain", False)
    media, params = _content_type(content_type)
    rendered: str | None
    if media in ("", "text/x-rst"):
        kind = "rst"
        rendered = readme_renderer.rst.render(description)
    elif media == "text/markdown":
        kind = "markdown"
        variant = params.get("variant", "GFM")
        # An unknown variant is rendered as GFM, as readme_renderer does.
        variant = variant if variant in _MARKDOWN_VARIANTS else "GFM"
        rendered = readme_renderer.markdown.render(description, variant=variant)
    else:
        kind = "plain"
        text = readme_renderer.txt.render(description)
        rendered = None if text is None else f"<pre>{text}</pre>"
    if rendered is None:
        return Readme(None, description, kind, True)
    # nh3 has sanitised it (readme_renderer.clean), so it may be inserted as it is.
    return Readme(Markup(rendered), description, kind, False)  # noqa: S704 - sanitised by nh3
