"""What must never be in a served page: script the page did not ship itself.

:func:`script_findings` parses HTML as a browser tokenizer would (entities in
attribute values decoded by :mod:`html.parser`) and names every way script
could run: a ``<script>`` that is not one of tilsit's static files, inline
script text, an ``on*`` attribute, a URL attribute whose scheme (after the
whitespace and control characters browsers drop) is ``javascript:``,
``vbscript:`` or ``data:``, and the tags that load or frame other documents.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["script_findings"]

_URL_ATTRIBUTES = {
    "href",
    "src",
    "action",
    "formaction",
    "xlink:href",
    "poster",
    "data",
    "background",
    "srcset",
    "codebase",
    "cite",
    "ping",
}
_FORBIDDEN_TAGS = {"iframe", "frame", "object", "embed", "applet", "base", "style"}
_BAD_SCHEMES = ("javascript:", "vbscript:", "data:")
# Browsers ignore ASCII whitespace and control characters inside a URL's scheme.
_IGNORED = re.compile(r"[\x00-\x20\x7f]+")


class _Finder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.findings: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "script":
            self._in_script = True
            if not values.get("src", "").startswith("/_/static/"):
                self.findings.append(f"<script> not from /_/static/: {values}")
        if tag in _FORBIDDEN_TAGS:
            self.findings.append(f"<{tag}> {values}")
        if tag == "meta" and values.get("http-equiv", "").lower() == "refresh":
            self.findings.append(f"<meta http-equiv=refresh> {values}")
        for name, value in values.items():
            if name.startswith("on"):
                self.findings.append(f"<{tag} {name}={value!r}>")
            if name == "style":
                self.findings.append(f"<{tag} style={value!r}> (inline style)")
            if name in _URL_ATTRIBUTES:
                folded = _IGNORED.sub("", value).lower()
                if folded.startswith(_BAD_SCHEMES):
                    self.findings.append(f"<{tag} {name}={value!r}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "script":
            self._in_script = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.findings.append(f"inline script text: {data[:80]!r}")


def script_findings(page: str) -> list[str]:
    finder = _Finder()
    finder.feed(page)
    finder.close()
    return finder.findings
