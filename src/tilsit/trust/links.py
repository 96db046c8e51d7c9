"""Reading the links of a signed simple page, for ``tilsit verify`` and ``tilsit mirror``.

A signed page (``index.html`` or ``index.v1.json``) names the files of a
project; :func:`page_links` reads its links, and :func:`package_target` maps a
file's URL path to the target path it is signed under. ``PAGE_HTML`` and
``PAGE_JSON`` are the pages' file names, ``JSON_TYPE`` the JSON page's media type.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser

__all__ = ["JSON_TYPE", "PAGE_HTML", "PAGE_JSON", "package_target", "page_links"]

PAGE_HTML = "index.html"
PAGE_JSON = "index.v1.json"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


class _Links(HTMLParser):
    """The ``<a href>`` links of a simple page, with their core-metadata flag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        values = dict(attrs)
        href = values.get("href")
        if href:
            metadata = values.get("data-core-metadata") or values.get("data-dist-info-metadata")
            self.links.append((href, bool(metadata) and metadata != "false"))


def page_links(target_path: str, data: bytes) -> list[tuple[str, bool]]:
    """Links of a signed page: (href, has core metadata)."""
    if target_path.endswith(PAGE_JSON):
        doc = json.loads(data)
        out: list[tuple[str, bool]] = []
        for f in doc.get("files", []):
            out.append((f["url"], bool(f.get("core-metadata") or f.get("dist-info-metadata"))))
        return out
    parser = _Links()
    parser.feed(data.decode("utf-8", "replace"))
    return parser.links


def package_target(url_path: str) -> str | None:
    """The target path of a file's URL path: /packages/… (public) or /<index>/packages/…
    (private) are index-relative ``packages/…`` either way; None for other paths."""
    parts = url_path.lstrip("/").split("/")
    if "packages" not in parts[:2]:
        return None
    return "/".join(parts[parts.index("packages") :])
