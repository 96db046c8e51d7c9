"""The legacy JSON API (``/pypi/<project>/json``) that poetry, bandersnatch and pip-audit read.

Field names and shapes follow PyPI's; ``info`` comes from the core metadata of
the release the page describes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from packaging.metadata import parse_email
from packaging.version import InvalidVersion, Version

from tilsit.render.snapshot import FileSnap, ProjectSnap, ReleaseSnap
from tilsit.render.tree import file_url
from tilsit.spec.simple import format_time

__all__ = ["latest_release", "project_json", "version_json"]

# Returns None for a blob not stored (a proxy's metadata not fetched yet).
ReadBlob = Callable[[str], bytes | None]


def latest_release(project: ProjectSnap) -> ReleaseSnap | None:
    """PyPI's choice: the highest non-yanked final release, else the highest release."""
    live = [r for r in project.live_releases if any(not f.deleted for f in r.files)]
    if not live:
        return None

    def is_final(release: ReleaseSnap) -> bool:
        try:
            return not Version(release.version).is_prerelease
        except InvalidVersion:
            return False

    preferred = [r for r in live if not r.yanked and is_final(r)]
    return (preferred or live)[-1]


def _file(release: ReleaseSnap, f: FileSnap, base_url: str, root: str) -> dict[str, Any]:
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
        "requires_python": f.requires_python,
        "size": f.size,
        # null when unknown (a mirrored file whose upstream gave no time), never invented.
        "upload_time": f.upload_time.strftime("%Y-%m-%dT%H:%M:%S") if f.upload_time else None,
        "upload_time_iso_8601": format_time(f.upload_time) if f.upload_time else None,
        "url": file_url(f.sha256, f.filename, base_url, root),
        "yanked": release.yanked or f.yanked,
        "yanked_reason": (f.yanked_reason if f.yanked else release.yanked_reason) or None,
    }


def _info(
    project: ProjectSnap, release: ReleaseSnap, read_blob: ReadBlob, base_url: str
) -> dict[str, Any]:
    files = [f for f in release.files if not f.deleted]
    raw: dict[str, Any] = {}
    if files:
        # Prefer a wheel's METADATA: an sdist's PKG-INFO may leave fields dynamic.
        # Only metadata stored for this index: the blob store is shared, and a proxy
        # page may name the hash of another (private) index's metadata.
        with_metadata = [f for f in files if f.metadata_sha256 is not None and f.metadata_cached]
        source = next((f for f in with_metadata if f.packagetype == "bdist_wheel"), None)
        source = source or (with_metadata[0] if with_metadata else None)
        data = read_blob(source.metadata_sha256) if source and source.metadata_sha256 else None
        if data is not None:
            parsed, _unparsed = parse_email(data)
            raw = dict(parsed)
    root = base_url.rstrip("/")
    urls = raw.get("project_urls") or {}
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
        "dynamic": raw.get("dynamic"),
        "home_page": raw.get("home_page"),
        "keywords": ",".join(raw.get("keywords", [])) or None,
        "license": raw.get("license"),
        "license_expression": raw.get("license_expression"),
        "license_files": raw.get("license_files"),
        "maintainer": raw.get("maintainer"),
        "maintainer_email": raw.get("maintainer_email"),
        "name": raw.get("name", project.name),
        "package_url": f"{root}/project/{project.normalized}/",
        "platform": None,
        "project_url": f"{root}/project/{project.normalized}/",
        "project_urls": urls or None,
        "provides_extra": raw.get("provides_extra"),
        "release_url": f"{root}/project/{project.normalized}/{release.version}/",
        "requires_dist": raw.get("requires_dist"),
        "requires_python": raw.get("requires_python"),
        "summary": raw.get("summary"),
        "version": release.version,
        "yanked": release.yanked,
        "yanked_reason": release.yanked_reason or None,
    }


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()


def project_json(project: ProjectSnap, read_blob: ReadBlob, base_url: str = "") -> bytes | None:
    latest = latest_release(project)
    if latest is None:
        return None
    releases = {
        r.version: [_file(r, f, base_url, project.files_root) for f in r.files if not f.deleted]
        for r in project.live_releases
    }
    return _dumps(
        {
            "info": _info(project, latest, read_blob, base_url),
            "last_serial": project.serial,
            "releases": releases,
            "urls": releases[latest.version],
            "vulnerabilities": [],
        }
    )


def version_json(
    project: ProjectSnap, release: ReleaseSnap, read_blob: ReadBlob, base_url: str = ""
) -> bytes:
    return _dumps(
        {
            "info": _info(project, release, read_blob, base_url),
            "last_serial": project.serial,
            "urls": [
                _file(release, f, base_url, project.files_root)
                for f in release.files
                if not f.deleted
            ],
            "vulnerabilities": [],
        }
    )
