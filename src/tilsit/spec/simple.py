"""The simple repository API documents: PEP 503 HTML and PEP 691 JSON.

Covers PEP 592 (yanked), PEP 658/714 (core metadata), PEP 700 (versions,
size, upload-time) and PEP 792 (project status). Pages are pure functions of
the dataclasses below, so the same input always gives the same bytes: that is
what lets a mirror of tilsit be byte-identical to its origin and what the TUF
layer signs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

__all__ = [
    "API_VERSION",
    "HTML",
    "HTML_CSP",
    "JSON",
    "JSON_SERIAL",
    "JSON_SERIAL_HEAD",
    "MEDIA_TYPES",
    "V1_HTML",
    "IndexEntry",
    "ProjectPage",
    "SimpleFile",
    "file_html",
    "file_json",
    "format_time",
    "index_html",
    "index_json",
    "json_page_serial",
    "project_html",
    "project_html_from_parts",
    "project_json",
    "project_json_from_parts",
]

API_VERSION = "1.4"  # 1.4 adds project-status (PEP 792); 1.1 versions/size/upload-time
JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
HTML = "text/html"
MEDIA_TYPES = (JSON, V1_HTML, HTML)
# Simple pages are HTML a browser may open: they load nothing and are never framed.
# Both servers send it: tilsit.web.read and the generated nginx config.
HTML_CSP = "default-src 'none'; frame-ancestors 'none'"


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, microseconds kept (PEP 700 upload-time)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class SimpleFile:
    filename: str
    url: str
    sha256: str
    size: int
    upload_time: datetime | None  # None: unknown (an upstream that gave none); left out
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "" yanked without a reason
    metadata_sha256: str | None = None  # set only when <url>.metadata exists


@dataclass(frozen=True, slots=True)
class ProjectPage:
    name: str  # normalised
    serial: int
    versions: Sequence[str]
    files: Sequence[SimpleFile]
    status: str = "active"


@dataclass(frozen=True, slots=True)
class IndexEntry:
    name: str  # normalised
    serial: int


def _file_json(f: SimpleFile) -> dict[str, object]:
    doc: dict[str, object] = {
        "filename": f.filename,
        "url": f.url,
        "hashes": {"sha256": f.sha256},
        "requires-python": f.requires_python,
        "yanked": False if f.yanked is None else (f.yanked or True),
    }
    if f.upload_time is not None:
        # PEP 700: optional; an unknown time is left out, never invented or null.
        doc["upload-time"] = format_time(f.upload_time)
    if f.size >= 0:
        # Negative means unknown: a proxied file from an HTML page before it is fetched.
        # Leaving the key out is better than a size that would fail a client's check.
        doc["size"] = f.size
    if f.metadata_sha256 is not None:
        metadata = {"sha256": f.metadata_sha256}
        doc["core-metadata"] = metadata
        doc["dist-info-metadata"] = metadata  # the name before PEP 714
    else:
        doc["core-metadata"] = False
        doc["dist-info-metadata"] = False
    return doc


def _dumps(doc: object) -> bytes:
    return _text(doc).encode()


def _text(doc: object) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=False)


# A project page is assembled from one part per file, so that a renderer can keep the
# parts of releases that did not change and join them again (a project of 2,000
# releases is re-rendered at every upload into it). The joined bytes are exactly what
# encoding the whole page at once gives.


def file_json(f: SimpleFile) -> str:
    """One file's entry in a PEP 691 project page, as it appears in the page."""
    return _text(_file_json(f))


def file_html(f: SimpleFile) -> str:
    """One file's anchor line in a PEP 503 project page, as it appears in the page."""
    attrs = [f'href="{escape(f.url)}#sha256={f.sha256}"']
    if f.requires_python:
        attrs.append(f'data-requires-python="{escape(f.requires_python)}"')
    if f.metadata_sha256 is not None:
        attrs.append(f'data-dist-info-metadata="sha256={f.metadata_sha256}"')
        attrs.append(f'data-core-metadata="sha256={f.metadata_sha256}"')
    if f.yanked is not None:
        attrs.append(f'data-yanked="{escape(f.yanked)}"')
    if f.upload_time is not None:
        attrs.append(f'data-upload-time="{format_time(f.upload_time)}"')
    return f"    <a {' '.join(attrs)}>{escape(f.filename)}</a><br />\n"


def project_json_from_parts(
    name: str,
    serial: int,
    versions: Sequence[str],
    files: Iterable[str],
    status: str = "active",
    reason: str = "",
) -> bytes:
    """A PEP 691 project page from its files' :func:`file_json` parts, in page order."""
    marker: dict[str, str] = {"status": status}
    if reason:
        marker["reason"] = reason  # PEP 792's optional free text
    head = _text(
        {
            "meta": {"api-version": API_VERSION, "_last-serial": serial},
            "name": name,
            "project-status": marker,
            "versions": list(versions),
        }
    )
    # "files" is the last key: the head without its closing brace, then the list.
    return f'{head[:-1]},"files":[{",".join(files)}]}}'.encode()


def project_html_from_parts(
    name: str, serial: int, files: Iterable[str], status: str = "active", reason: str = ""
) -> bytes:
    """A PEP 503 project page from its files' :func:`file_html` parts, in page order."""
    status_meta = f'    <meta name="pypi:project-status" content="{escape(status)}">\n'
    if reason:
        status_meta += f'    <meta name="pypi:project-status-reason" content="{escape(reason)}">\n'
    head = _head(f"Links for {name}", status_meta) + f"    <h1>Links for {escape(name)}</h1>\n"
    tail = f"  </body>\n</html>\n<!--SERIAL {serial}-->\n"
    return "".join((head, *files, tail)).encode()


def project_json(page: ProjectPage) -> bytes:
    return project_json_from_parts(
        page.name, page.serial, page.versions, map(file_json, page.files), page.status
    )


def _head(title: str, extra_meta: str = "") -> str:
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"{extra_meta}"
        f"    <title>{escape(title)}</title>\n  </head>\n  <body>\n"
    )


def project_html(page: ProjectPage) -> bytes:
    return project_html_from_parts(page.name, page.serial, map(file_html, page.files), page.status)


# A JSON page (index or project) puts "meta" first, so "_last-serial" is in its first bytes.
JSON_SERIAL = re.compile(rb'"_last-serial":(\d+)')
JSON_SERIAL_HEAD = 200


def json_page_serial(head: bytes) -> int | None:
    """The serial a JSON simple page carries, read from its first ``JSON_SERIAL_HEAD`` bytes."""
    match = JSON_SERIAL.search(head[:JSON_SERIAL_HEAD])
    return int(match[1]) if match else None


def index_json(entries: Sequence[IndexEntry], serial: int) -> bytes:
    return _dumps(
        {
            "meta": {"api-version": API_VERSION, "_last-serial": serial},
            "projects": [{"name": e.name, "_last-serial": e.serial} for e in entries],
        }
    )


def index_html(entries: Sequence[IndexEntry], serial: int) -> bytes:
    lines = [_head("Simple index")]
    lines += [f'    <a href="{escape(e.name)}/">{escape(e.name)}</a><br />\n' for e in entries]
    lines.append(f"  </body>\n</html>\n<!--SERIAL {serial}-->\n")
    return "".join(lines).encode()
