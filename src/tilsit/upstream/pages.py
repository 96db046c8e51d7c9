"""Reading another index's simple pages: PEP 691 JSON and PEP 503 HTML.

A project page becomes a :class:`tilsit.index.upstream.UpstreamProject`, the
one shape the mirror and proxy write path takes; a root page becomes
``{normalized name: serial or None}``. Parsing is strict about what tilsit
must verify (every file needs a sha256, or it is skipped with the reason) and
lenient about what it only passes on (an unreadable upload time is dropped).

Covers PEP 592 (yanked), PEP 658/714 (core metadata, both spellings), PEP 700
(size, upload-time, versions) and the ``_last-serial`` / ``<!--SERIAL n-->``
conventions of PyPI, warehouse and tilsit. HTML is read with the standard
library's ``html.parser``, which unescapes attribute values and text.

Every filename a page lists (or its URL's last segment, when an anchor has no
text) becomes a path in the tree, so each is checked by
:func:`tilsit.spec.treepaths.check_target` as the file's target path: a file
that fails (``..``, a slash, non-ASCII, over the length bound, not a
distribution name) is skipped with the reason, and the other files go on.
Project names on a root page are checked the same way as their page's path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from tilsit.index.upstream import UpstreamFile, UpstreamProject
from tilsit.spec.filenames import classify_mirrored
from tilsit.spec.names import (
    InvalidProjectName,
    InvalidVersionText,
    normalize,
    validate_name,
    validate_version,
)
from tilsit.spec.treepaths import PAGES, UnsafeTreePath, check_target, path_shape
from tilsit.upstream.errors import InvalidUpstreamPage

__all__ = [
    "ACCEPT",
    "JSON_TYPE",
    "UNKNOWN_SIZE",
    "InvalidUpstreamPage",
    "ParsedProject",
    "RootIndex",
    "SkippedFile",
    "SkippedProject",
    "is_json",
    "parse_project_page",
    "parse_root_page",
]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
# What pip sends: JSON first, the two HTML spellings as fallbacks.
ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.1,"
    " text/html;q=0.01"
)
_HTML_TYPES = ("application/vnd.pypi.simple.v1+html", "text/html")
_SERIAL_COMMENT = re.compile(r"^\s*SERIAL\s+(\d+)\s*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

UNKNOWN_SIZE = -1


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file the page lists that tilsit will not take, and why."""

    filename: str
    reason: str


@dataclass(frozen=True, slots=True)
class SkippedProject:
    """A name a root page lists that tilsit will not take, and why."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedProject:
    project: UpstreamProject
    skipped: tuple[SkippedFile, ...] = ()
    page_serial: int | None = None  # the serial in the body itself, before the header fallback


@dataclass(frozen=True, slots=True)
class RootIndex:
    projects: Mapping[str, int | None]  # normalized name -> _last-serial, None when not given
    serial: int | None  # meta._last-serial, <!--SERIAL n-->, or the header
    skipped: tuple[SkippedProject, ...] = ()


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    return _media_type(content_type) in (JSON_TYPE, "application/json")


def _kind(url: str, content_type: str | None) -> str:
    media = _media_type(content_type)
    if media in (JSON_TYPE, "application/json"):
        return "json"
    if media in _HTML_TYPES or media == "":
        return "html"
    raise InvalidUpstreamPage(url, f"unexpected content type {content_type!r}")


def _check_api_version(url: str, version: object) -> None:
    if version is None:
        return
    if not isinstance(version, str) or version.split(".", 1)[0] != "1":
        raise InvalidUpstreamPage(url, f"unsupported simple API version {version!r}")


def _serial(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _hash_attr(value: str | None) -> str | None:
    """``sha256=<hex>`` (a PEP 658 attribute or a URL fragment) -> the hex digest."""
    if not value:
        return None
    for part in value.split("&"):
        algo, _, digest = part.partition("=")
        if algo.strip().lower() == "sha256" and _SHA256.match(digest.strip().lower()):
            return digest.strip().lower()
    return None


def _json_metadata(value: object) -> str | None:
    # PEP 714: core-metadata (new) or dist-info-metadata (old); True means a
    # metadata file without hashes, which tilsit cannot verify and so ignores.
    if isinstance(value, dict):
        digest = value.get("sha256")
        if isinstance(digest, str) and _SHA256.match(digest.lower()):
            return digest.lower()
    return None


# PEP 792's statuses; anything else an upstream says is read as the default.
_STATUSES = frozenset({"active", "archived", "deprecated", "quarantined"})


def _known_status(value: object) -> str:
    return value if isinstance(value, str) and value in _STATUSES else "active"


def _status(doc: dict[str, Any]) -> str:
    """A JSON page's PEP 792 ``project-status.status``."""
    marker = doc.get("project-status")
    return _known_status(marker.get("status") if isinstance(marker, dict) else None)


def _json_yanked(value: object) -> str | None:
    # As pip reads it: True or a non-empty reason yanks; False and "" do not.
    if value is True:
        return ""
    if isinstance(value, str) and value:
        return value
    return None


def _file_refusal(project: str, filename: str, sha256: str) -> str | None:
    """Why a listed file cannot be taken (its paths in the tree), or None.

    Its target ``packages/<aa>/<bb>/<rest>/<filename>`` (its ``.metadata`` and
    hashed links are within the bound the filename check keeps, see
    :data:`tilsit.spec.filenames.MAX_FILENAME_LENGTH`), and the release
    directory its version becomes.
    """
    try:
        check_target(f"packages/{sha256[:2]}/{sha256[2:4]}/{sha256[4:]}/{filename}")
    except UnsafeTreePath as exc:
        return f"refused file name: {exc.reason}"
    return _release_refusal(project, classify_mirrored(normalize(project), filename)[1])


def _release_refusal(project: str, version: str) -> str | None:
    """Why ``version`` cannot be a release (``pypi/<project>/<version>/json``), or None."""
    try:
        validate_version(version)
        path_shape(f"pypi/{normalize(project)}/{version}/json")
    except (InvalidVersionText, UnsafeTreePath) as exc:
        return f"refused version: {exc}"
    return None


def _url_filename(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def _check_name(url: str, wanted: str, found: str) -> None:
    try:
        validate_name(found)  # bounded: the tree must hold it (issue 9, item 8)
    except InvalidProjectName as exc:
        raise InvalidUpstreamPage(url, str(exc)) from exc
    if normalize(found) != normalize(wanted):
        raise InvalidUpstreamPage(url, f"page is for {found!r}, not {wanted!r}")


def _load_json(url: str, body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidUpstreamPage(url, f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidUpstreamPage(url, "the JSON document is not an object")
    return doc


def _json_project(
    url: str, body: bytes, name: str
) -> tuple[str, int | None, list[UpstreamFile], list[SkippedFile], list[str], str]:
    doc = _load_json(url, body)
    meta = doc.get("meta") or {}
    if not isinstance(meta, dict):
        raise InvalidUpstreamPage(url, "'meta' is not an object")
    _check_api_version(url, meta.get("api-version"))
    spelled = doc.get("name", name)
    if not isinstance(spelled, str):
        raise InvalidUpstreamPage(url, "'name' is not a string")
    _check_name(url, name, spelled)
    entries = doc.get("files", [])
    if not isinstance(entries, list):
        raise InvalidUpstreamPage(url, "'files' is not a list")
    files: list[UpstreamFile] = []
    skipped: list[SkippedFile] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise InvalidUpstreamPage(url, "a file entry is not an object")
        href, filename = entry.get("url"), entry.get("filename")
        if not isinstance(href, str) or not isinstance(filename, str):
            raise InvalidUpstreamPage(url, "a file entry lacks a url or filename string")
        hashes = entry.get("hashes")
        digest = hashes.get("sha256") if isinstance(hashes, dict) else None
        if not isinstance(digest, str) or not _SHA256.match(digest.lower()):
            skipped.append(SkippedFile(filename, "no sha256 hash on the upstream page"))
            continue
        refusal = _file_refusal(name, filename, digest.lower())
        if refusal is not None:
            skipped.append(SkippedFile(filename, refusal))
            continue
        size = entry.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            size = UNKNOWN_SIZE
        requires_python = entry.get("requires-python")
        metadata = entry.get("core-metadata", entry.get("dist-info-metadata"))
        files.append(
            UpstreamFile(
                filename=filename,
                url=urldefrag(urljoin(url, href)).url,
                sha256=digest.lower(),
                size=size,
                upload_time=_time(entry.get("upload-time")),
                requires_python=requires_python if isinstance(requires_python, str) else None,
                yanked=_json_yanked(entry.get("yanked")),
                metadata_sha256=_json_metadata(metadata),
            )
        )
    versions = doc.get("versions", [])
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        raise InvalidUpstreamPage(url, "'versions' is not a list of strings")
    # A listed version becomes a release directory (pypi/<project>/<version>/json).
    refused = {v: r for v in versions if (r := _release_refusal(name, v)) is not None}
    skipped += [SkippedFile(f"version {v}", reason) for v, reason in refused.items()]
    versions = [v for v in versions if v not in refused]
    return spelled, _serial(meta.get("_last-serial")), files, skipped, versions, _status(doc)


class _SimpleHTML(HTMLParser):
    """Collects anchors (attributes and text), the base URL, meta tags and SERIAL."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.meta: dict[str, str] = {}
        self.base: str | None = None
        self.serial: int | None = None
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._close_anchor()
            self._open = dict(attrs)
            self._text = []
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "meta":
            found = dict(attrs)
            key, content = found.get("name"), found.get("content")
            if key and content is not None:
                self.meta[key] = content

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._close_anchor()

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_comment(self, data: str) -> None:
        match = _SERIAL_COMMENT.match(data)
        if match:
            self.serial = int(match[1])

    def _close_anchor(self) -> None:
        if self._open is not None:
            self.anchors.append((self._open, "".join(self._text).strip()))
            self._open = None

    def finish(self) -> None:
        self.close()
        self._close_anchor()


def _read_html(url: str, body: bytes) -> _SimpleHTML:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidUpstreamPage(url, f"the HTML page is not UTF-8: {exc}") from exc
    parser = _SimpleHTML()
    parser.feed(text)
    parser.finish()
    _check_api_version(url, parser.meta.get("pypi:repository-version"))
    return parser


def _html_project(
    url: str, body: bytes, name: str
) -> tuple[str, int | None, list[UpstreamFile], list[SkippedFile], list[str], str]:
    parsed = _read_html(url, body)
    base = urljoin(url, parsed.base) if parsed.base else url
    files: list[UpstreamFile] = []
    skipped: list[SkippedFile] = []
    for attrs, text in parsed.anchors:
        href = attrs.get("href")
        if not href:
            continue
        absolute, fragment = urldefrag(urljoin(base, href))
        filename = text or _url_filename(absolute)
        digest = _hash_attr(fragment)
        if digest is None:
            skipped.append(SkippedFile(filename, "no sha256 hash on the upstream page"))
            continue
        refusal = _file_refusal(name, filename, digest)
        if refusal is not None:
            skipped.append(SkippedFile(filename, refusal))
            continue
        metadata = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        # A bare data-yanked attribute yanks without a reason.
        yanked = (attrs["data-yanked"] or "") if "data-yanked" in attrs else None
        files.append(
            UpstreamFile(
                filename=filename,
                url=absolute,
                sha256=digest,
                size=UNKNOWN_SIZE,
                upload_time=_time(attrs.get("data-upload-time")),
                requires_python=attrs.get("data-requires-python") or None,
                yanked=yanked,
                metadata_sha256=_hash_attr(metadata),
            )
        )
    return (
        name,
        parsed.serial,
        files,
        skipped,
        [],
        _known_status(parsed.meta.get("pypi:project-status")),
    )


def parse_project_page(
    body: bytes,
    content_type: str | None,
    url: str,
    name: str,
    *,
    header_serial: int | None = None,
    etag: str | None = None,
) -> ParsedProject:
    """Read one project page fetched from ``url`` (file URLs resolve against it).

    ``name`` is the project asked for; a page for another project is refused.
    The serial is the page's own (``meta._last-serial`` or ``<!--SERIAL n-->``),
    else ``header_serial`` (``X-PyPI-Last-Serial``). A file without a sha256 is
    left out and listed in ``skipped``; a size the page does not give is
    ``UNKNOWN_SIZE`` (-1), to be measured while fetching.
    """
    if _kind(url, content_type) == "json":
        spelled, serial, files, skipped, versions, status = _json_project(url, body, name)
    else:
        spelled, serial, files, skipped, versions, status = _html_project(url, body, name)
    seen: set[str] = set()
    unique: list[UpstreamFile] = []
    for f in files:
        if f.filename in seen:
            skipped.append(SkippedFile(f.filename, "listed twice on the upstream page"))
            continue
        seen.add(f.filename)
        unique.append(f)
    project = UpstreamProject(
        name=spelled,
        serial=serial if serial is not None else header_serial,
        files=tuple(unique),
        versions=tuple(versions),
        etag=etag,
        status=status,
    )
    return ParsedProject(project, tuple(skipped), serial)


def parse_root_page(
    body: bytes, content_type: str | None, url: str, *, header_serial: int | None = None
) -> RootIndex:
    """Read a root (``/simple/``) page: every project with its ``_last-serial`` if given."""
    projects: dict[str, int | None] = {}
    skipped: list[SkippedProject] = []

    def listed(name: str, serial: int | None) -> None:
        refusal = _project_refusal(name)
        if refusal is None:
            projects[normalize(name)] = serial
        else:
            skipped.append(SkippedProject(name, refusal))

    if _kind(url, content_type) == "json":
        doc = _load_json(url, body)
        meta = doc.get("meta") or {}
        if not isinstance(meta, dict):
            raise InvalidUpstreamPage(url, "'meta' is not an object")
        _check_api_version(url, meta.get("api-version"))
        entries = doc.get("projects")
        if not isinstance(entries, list):
            raise InvalidUpstreamPage(url, "'projects' is not a list")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise InvalidUpstreamPage(url, "a project entry lacks a name")
            listed(entry["name"], _serial(entry.get("_last-serial")))
        serial = _serial(meta.get("_last-serial"))
    else:
        parsed = _read_html(url, body)
        for attrs, text in parsed.anchors:
            href = attrs.get("href")
            label = text or (unquote(href.rstrip("/").rsplit("/", 1)[-1]) if href else "")
            if label:
                listed(label, None)
        serial = parsed.serial
    return RootIndex(projects, serial if serial is not None else header_serial, tuple(skipped))


def _project_refusal(name: str) -> str | None:
    """Why a root page's project name cannot become ``simple/<name>/`` here, or None."""
    try:
        validate_name(name)
        check_target(f"simple/{normalize(name)}/{PAGES[0]}")
    except (InvalidProjectName, UnsafeTreePath) as exc:
        return str(exc)
    return None
