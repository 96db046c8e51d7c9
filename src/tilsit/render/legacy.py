"""The legacy JSON API (``/pypi/<project>/json``) that poetry, bandersnatch and pip-audit read.

Field names and shapes follow PyPI's (warehouse's ``legacy/api/json.py``);
``info`` comes from the core metadata of the release the page describes, read
as warehouse reads an upload's metadata (``forklift/legacy.py``).

The tree is rendered ahead of requests, so there is no request to take a host
from: every URL is built on the ``base_url`` setting. (Even a proxy, which fills
a project while a request waits, writes pages every later reader gets, so the
Host header of the request that caused it must not be baked in: it is whatever
that sender wrote.) Without ``base_url`` URLs are
root-relative (``/packages/…``, ``/<index>/simple/<project>/``). Such a URL
resolves against the JSON's own URL for any reader that resolves references
(RFC 3986), and it is what bandersnatch accepts besides an absolute URL (it
prefixes its master URL to a path and requires the path to start with
``/packages``); a path relative to the document (``../../../packages/…``) would
break bandersnatch and is not what PyPI ever served. Readers that take ``url``
as a complete address need ``base_url``; :func:`base_url_warning` says so
in ``/_/health`` and the ``serve`` start-up text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from packaging.metadata import RawMetadata, parse_email
from packaging.version import InvalidVersion, Version

from tilsit.index.vuln_reads import KnownVuln
from tilsit.render.snapshot import FileSnap, ProjectSnap, ReleaseSnap
from tilsit.spec.simple import format_time
from tilsit.store.tree import file_url

__all__ = [
    "base_url_warning",
    "latest_release",
    "project_json",
    "project_urls",
    "release_files_json",
    "release_metadata",
    "version_json",
    "vulnerabilities",
]

# Returns None for a blob not stored (a proxy's metadata not fetched yet).
ReadBlob = Callable[[str], bytes | None]


def base_url_warning(base_url: str) -> str | None:
    """What the operator should know about ``base_url`` for these pages, else None:
    that it is unset, or that it is not an address file URLs can be built on."""
    if not base_url.strip():
        return (
            "base_url is unset: the legacy JSON API (/<index>/pypi/<project>/json) gives"
            " root-relative URLs (/packages/..., /<index>/simple/<project>/), which readers"
            " that need a full address cannot use; set base_url to the server's public URL"
            ' (base_url = "https://pypi.example.com" in the settings file, or TILSIT_BASE_URL)'
            " for `tilsit serve` and every other tilsit command, as they render pages too;"
            " then run `tilsit rebuild`"
        )
    parts = urlsplit(base_url)
    if parts.scheme in ("http", "https") and parts.netloc and not (parts.query or parts.fragment):
        return None
    # Every page's file URLs are built on it: "pypi.example.com" would give
    # "pypi.example.com/packages/...", a relative path no client can use.
    return (
        f"base_url {base_url[:200]!r} is not an absolute http(s) URL without query or"
        " fragment, so the file URLs of every page built on it are broken; set it like"
        ' base_url = "https://pypi.example.com" (settings file or TILSIT_BASE_URL), then'
        " run `tilsit rebuild`"
    )


def _is_yanked(release: ReleaseSnap) -> bool:
    """Yanked as a whole, or every live file of it yanked one by one."""
    live = [f for f in release.files if not f.deleted]
    return release.yanked or (bool(live) and all(f.yanked for f in live))


def latest_release(project: ProjectSnap) -> ReleaseSnap | None:
    """PyPI's choice for ``info.version``: the highest release by, in turn, not yanked,
    final (not a pre- or dev release; a version that is not PEP 440 counts as neither,
    sorted after both as PyPI sorts NULLs last), then version.

    Only releases with a live file count: a release whose files are all deleted has
    no page in the tree.
    """
    live = [r for r in project.live_releases if any(not f.deleted for f in r.files)]
    if not live:
        return None

    def prerelease_rank(release: ReleaseSnap) -> int:
        try:
            return 1 if Version(release.version).is_prerelease else 0
        except InvalidVersion:
            return 2

    # live is in version order; the lowest key wins, ties go to the highest version.
    best = min(
        range(len(live)),
        key=lambda i: (_is_yanked(live[i]), prerelease_rank(live[i]), -i),
    )
    return live[best]


def _time(moment: datetime | None, form: Callable[[datetime], str]) -> str | None:
    # A mirrored file whose upstream gave no upload time has None: say "unknown" (null)
    # rather than invent a time, which would mislead every client cool-down.
    return None if moment is None else form(moment)


def _legacy_time(moment: datetime) -> str:
    # PyPI's upload_time: UTC without zone or fraction (the same moment as the ISO key).
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _file(release: ReleaseSnap, f: FileSnap, base_url: str, root: str) -> dict[str, Any]:
    upload_time: datetime | None = f.upload_time
    return {
        "comment_text": "",
        # bandersnatch fetches <file>.metadata only when this key offers it, as PyPI's does.
        "core-metadata": (
            {"sha256": f.metadata_sha256}
            if f.serves_metadata and f.metadata_sha256 is not None
            else False
        ),
        "digests": {"blake2b_256": f.blake2_256, "md5": f.md5, "sha256": f.sha256},
        "downloads": -1,
        "filename": f.filename,
        "has_sig": False,
        "md5_digest": f.md5,
        "packagetype": f.packagetype,
        "python_version": f.python_version,
        "requires_python": f.requires_python or None,
        "size": f.size,
        "upload_time": _time(upload_time, _legacy_time),
        "upload_time_iso_8601": _time(upload_time, format_time),
        "url": file_url(f.sha256, f.filename, base_url, root),
        "yanked": release.yanked or f.yanked,
        "yanked_reason": (f.yanked_reason if f.yanked else release.yanked_reason) or None,
    }


def _files(release: ReleaseSnap, base_url: str, root: str) -> list[dict[str, Any]]:
    # PyPI lists a release's files by filename.
    live = sorted((f for f in release.files if not f.deleted), key=lambda f: f.filename)
    return [_file(release, f, base_url, root) for f in live]


def release_files_json(release: ReleaseSnap, base_url: str, root: str) -> str:
    """A release's file list as the project's JSON gives it under ``releases``."""
    return _text(_files(release, base_url, root))


def project_urls(raw: RawMetadata) -> dict[str, str]:
    """``info.project_urls`` as PyPI derives it (warehouse ``Release.urls``).

    ``Home-page`` becomes "Homepage" and ``Download-URL`` "Download", first; then each
    ``Project-URL`` by its label, except one that repeats the Homepage or Download
    entry under the label that means the same (compared without case, "-" or "_").
    """
    urls: dict[str, str] = {}
    if home := raw.get("home_page"):
        urls["Homepage"] = home
    if download := raw.get("download_url"):
        urls["Download"] = download
    for label, url in (raw.get("project_urls") or {}).items():
        folded = label.casefold().replace("-", "").replace("_", "")
        if folded == "homepage" and url == urls.get("Homepage"):
            continue
        if folded == "downloadurl" and url == urls.get("Download"):
            continue
        urls[label] = url
    return urls


def _metadata(release: ReleaseSnap, read_blob: ReadBlob) -> RawMetadata:
    files = [f for f in release.files if not f.deleted]
    # Prefer a wheel's METADATA: an sdist's PKG-INFO may leave fields dynamic.
    # Only metadata stored for this index: the blob store is shared, and a proxy
    # page may name the hash of another (private) index's metadata.
    with_metadata = [f for f in files if f.metadata_sha256 is not None and f.metadata_cached]
    source = next((f for f in with_metadata if f.packagetype == "bdist_wheel"), None)
    source = source or (with_metadata[0] if with_metadata else None)
    data = read_blob(source.metadata_sha256) if source and source.metadata_sha256 else None
    if data is None:
        return {}
    parsed, _unparsed = parse_email(data)
    return parsed


def release_metadata(release: ReleaseSnap, read_blob: ReadBlob) -> RawMetadata:
    """A release's core metadata as its legacy JSON reads it (the search index too)."""
    return _metadata(release, read_blob)


def _info(
    project: ProjectSnap, release: ReleaseSnap, read_blob: ReadBlob, base_url: str
) -> dict[str, Any]:
    raw = _metadata(release, read_blob)
    root = base_url.rstrip("/")
    # tilsit has no per-project or per-release web page for readers (the UI's
    # /project/<index>/<name>/ is a management page behind a login), so these point
    # at what exists for every project of every index: the simple page, which lists
    # every file of the project and opens in a browser, and for the release the
    # release's own JSON, the one page about that version alone.
    simple_page = f"{root}/{project.index}/simple/{project.normalized}/"
    version_path = quote(release.version, safe="+!")
    keywords = raw.get("keywords") or []
    platforms = raw.get("platforms") or []
    dynamic = raw.get("dynamic") or []
    return {
        "author": raw.get("author"),
        "author_email": raw.get("author_email"),
        "bugtrack_url": None,
        "classifiers": raw.get("classifiers", []),
        "description": raw.get("description", ""),
        "description_content_type": raw.get("description_content_type"),
        "docs_url": None,
        "download_url": raw.get("download_url"),
        "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},
        # Header names, title-cased as warehouse stores them.
        "dynamic": [d.title() for d in dynamic] or None,
        "home_page": raw.get("home_page"),
        # The Keywords field is split at commas (packaging, as warehouse does), so
        # "a, b,c" reads "a, b, c" and space-separated "a b c" stays one keyword.
        "keywords": ", ".join(keywords) or None,
        "license": raw.get("license"),
        "license_expression": raw.get("license_expression"),
        "license_files": raw.get("license_files") or None,
        "maintainer": raw.get("maintainer"),
        "maintainer_email": raw.get("maintainer_email"),
        "name": project.name,  # PyPI's is the project's name, not the metadata's spelling
        "package_url": simple_page,
        # Platform may be given more than once; PyPI keeps the first (one string).
        "platform": platforms[0] if platforms else None,
        "project_url": simple_page,
        "project_urls": project_urls(raw) or None,
        "provides_extra": raw.get("provides_extra") or None,
        "release_url": f"{root}/{project.index}/pypi/{project.normalized}/{version_path}/json",
        "requires_dist": raw.get("requires_dist") or None,
        "requires_python": raw.get("requires_python") or None,
        "summary": raw.get("summary"),
        "version": release.version,
        "yanked": release.yanked,
        "yanked_reason": release.yanked_reason or None,
    }


def _dumps(doc: dict[str, Any]) -> bytes:
    return _text(doc).encode()


def _text(doc: object) -> str:
    return json.dumps(doc, ensure_ascii=False, sort_keys=True)


# "vulnerabilities", PyPI's list of the known vulnerabilities of the release a document
# describes, comes from the imported OSV records (tilsit vuln import), on every kind of
# index, and only once some import exists: before that, PyPI's "[]" would state "none
# known" where tilsit knows nothing (a mirror does not carry PyPI's list). Beware that
# leaving it out is not a signal to every reader: pip-audit's PyPI service reads a
# missing key as "none" too; /osv/v1/ is the endpoint it should be pointed at.


def vulnerabilities(
    release: ReleaseSnap, vulns: Sequence[KnownVuln], base_url: str
) -> list[dict[str, Any]]:
    """PyPI's ``vulnerabilities`` entries (warehouse ``legacy/api/json.py``) for ``release``:
    the records that affect its version, by id. ``withdrawn`` is always null: a withdrawn
    record is deleted at import."""
    root = base_url.rstrip("/")
    return [
        {
            "aliases": list(vuln.aliases),
            "details": vuln.details,
            "fixed_in": list(vuln.fixed_in),
            "id": vuln.id,
            "link": f"{root}/osv/v1/vulns/{quote(vuln.id, safe='')}",
            "source": "osv",
            "summary": vuln.summary,
            "withdrawn": None,
        }
        for vuln in sorted(vulns, key=lambda v: v.id)
        if vuln.affects(release.version)
    ]


# What a release's ``releases`` entry is, as JSON text (release_files_json, or a
# renderer's copy of it kept from an earlier render).
FilesJson = Callable[[ReleaseSnap], str]


def project_json(
    project: ProjectSnap,
    read_blob: ReadBlob,
    base_url: str = "",
    files_json: FilesJson | None = None,
    vulns: Sequence[KnownVuln] | None = None,
) -> bytes | None:
    """The project's JSON, assembled from each release's file list: the bytes are what
    encoding the whole document at once (keys sorted) gives, so a renderer may pass the
    lists of unchanged releases from an earlier render. ``vulns``: the imported records
    that name the project (None: no import yet, and no ``vulnerabilities`` key)."""
    latest = latest_release(project)
    if latest is None:
        return None

    def fresh(release: ReleaseSnap) -> str:
        return release_files_json(release, base_url, project.files_root)

    lists = {r.version: (files_json or fresh)(r) for r in project.live_releases}
    releases = ", ".join(f"{_text(version)}: {lists[version]}" for version in sorted(lists))
    known = ""
    if vulns is not None:
        known = f', "vulnerabilities": {_text(vulnerabilities(latest, vulns, base_url))}'
    # The top-level keys in sorted order, as sort_keys writes them.
    return (
        f'{{"info": {_text(_info(project, latest, read_blob, base_url))},'
        f' "last_serial": {_text(project.serial)},'
        f' "releases": {{{releases}}},'
        f' "urls": {lists[latest.version]}'
        f"{known}}}"
    ).encode()


def version_json(
    project: ProjectSnap,
    release: ReleaseSnap,
    read_blob: ReadBlob,
    base_url: str = "",
    vulns: Sequence[KnownVuln] | None = None,
) -> bytes:
    doc = {
        "info": _info(project, release, read_blob, base_url),
        # The release's own last change, so a change to another release leaves this
        # page as it is; a mirror's or proxy's releases show the project's serial.
        "last_serial": project.serial if release.serial is None else release.serial,
        "urls": _files(release, base_url, project.files_root),
    }
    if vulns is not None:
        doc["vulnerabilities"] = vulnerabilities(release, vulns, base_url)
    return _dumps(doc)
