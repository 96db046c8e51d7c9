"""What a project's browsing page shows, read from the database: pure data for the templates.

The releases and files come from the renderer's snapshots (the same reads that make
the simple pages, so the page and the simple index never disagree), through the
virtual index's policy for a virtual index (:func:`tilsit.render.virtual.explain`:
a hidden file or version is not in the snapshot at all). The core metadata is the
stored blob the legacy JSON reads (:func:`tilsit.render.legacy.release_metadata`).

Who uploaded a file is ``files.uploaded_by``; an upload through trusted publishing
has no user there, and is recorded by its audit event (``upload`` with the
publisher's id in its detail, :func:`tilsit.index.upload.store_upload`), which is
read here for the shown release's files only, on the ``(index, project, at)``
index of the audit table.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from packaging.metadata import RawMetadata
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.auth.oidc.publishers import describe
from tilsit.db.models import AuditEventRow, FileRow, IndexRow, PolicyRow, PublisherRow, UserRow
from tilsit.index.upstream_options import public_url
from tilsit.render.legacy import latest_release, project_urls, release_metadata
from tilsit.render.snapshot import FileSnap, ProjectSnap, ProjectSnapshots, ReleaseSnap
from tilsit.render.virtual import explain
from tilsit.spec.versions import version_key
from tilsit.store.tree import file_url

__all__ = [
    "FileView",
    "Metadata",
    "ProjectSource",
    "ReleaseItem",
    "files_of",
    "find_release",
    "history",
    "install_snippets",
    "metadata_of",
    "policy_version",
    "shown_releases",
    "source_of",
    "upstream_of",
]

ReadBlob = Callable[[str], bytes | None]

# How far an upload's audit event may lie from its file's upload time: both are taken
# in the same write transaction, so a minute is generous.
_AUDIT_SLACK = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ProjectSource:
    """A project as an index's pages show it, and where its files come from."""

    snap: ProjectSnap
    leaf: IndexRow  # the hosted, mirror or proxy index that holds the files
    owner_rule: str | None = None  # virtual indexes: the ownership rule that chose ``leaf``


def source_of(
    session: Session,
    snapshots: ProjectSnapshots,
    index: IndexRow,
    normalized: str,
    now: datetime,
    read_blob: ReadBlob,
) -> tuple[ProjectSource | None, str | None]:
    """The project's snapshot (a virtual index's after its policy), or None and why not."""
    if index.kind == "virtual":
        view = explain(session, snapshots, index, normalized, now, read_blob)
        if view.snap is None or view.snap.deleted or view.owner is None:
            return None, view.reason
        leaf = session.scalars(select(IndexRow).where(IndexRow.name == view.owner)).first()
        if leaf is None:
            return None, view.reason
        return ProjectSource(view.snap, leaf, view.rule), None
    snap = snapshots.load(session, index, normalized)
    if snap is None or snap.deleted:
        return None, None
    return ProjectSource(snap, index), None


def policy_version(session: Session, index: IndexRow) -> int:
    """The version of a virtual index's policy (0: none), part of its pages' cache key:
    a policy change is journaled for the index, not for each project it hides."""
    if index.kind != "virtual":
        return 0
    return session.scalar(select(PolicyRow.version).where(PolicyRow.index_id == index.id)) or 0


def _live(release: ReleaseSnap) -> bool:
    return not release.deleted and any(not f.deleted for f in release.files)


def shown_releases(snap: ProjectSnap) -> list[ReleaseSnap]:
    """The releases a page lists, latest first: those with a file shown."""
    return [r for r in reversed(snap.releases) if _live(r)]


def find_release(snap: ProjectSnap, version: str) -> ReleaseSnap | None:
    """The shown release ``version`` names, as spelled or by PEP 440 equality."""
    releases = shown_releases(snap)
    exact = next((r for r in releases if r.version == version), None)
    if exact is not None:
        return exact
    wanted = version_key(version)
    return next((r for r in releases if version_key(r.version) == wanted), None)


def default_release(snap: ProjectSnap) -> ReleaseSnap | None:
    """The release the project page describes: PyPI's choice (not yanked, final, highest)."""
    return latest_release(snap)


@dataclass(frozen=True, slots=True)
class ReleaseItem:
    version: str
    yanked: bool
    yanked_reason: str
    prerelease: bool
    uploaded: datetime | None  # the first file's upload time; None: unknown (mirrored)


def _prerelease(version: str) -> bool:
    try:
        return Version(version).is_prerelease
    except InvalidVersion:
        return False


def _yank(release: ReleaseSnap) -> tuple[bool, str]:
    """Yanked as a whole, or every shown file yanked (as upstream pages yank files)."""
    live = [f for f in release.files if not f.deleted]
    if release.yanked:
        return True, release.yanked_reason
    if live and all(f.yanked for f in live):
        return True, next((f.yanked_reason for f in live if f.yanked_reason), "")
    return False, ""


def history(releases: list[ReleaseSnap]) -> list[ReleaseItem]:
    items = []
    for release in releases:
        yanked, reason = _yank(release)
        times = [f.upload_time for f in release.files if not f.deleted and f.upload_time]
        items.append(
            ReleaseItem(
                release.version,
                yanked,
                reason,
                _prerelease(release.version),
                min(times, default=None),
            )
        )
    return items


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str
    clickable: bool  # only http and https URLs are made links; anything else is text


@dataclass(frozen=True, slots=True)
class Metadata:
    summary: str
    description: str
    description_content_type: str | None
    requires_python: str
    licence: str  # the licence expression, else the free-text licence
    licence_is_expression: bool
    urls: tuple[Link, ...]
    classifiers: tuple[str, ...]
    author: str
    maintainer: str
    keywords: tuple[str, ...]
    requires_dist: tuple[str, ...]


def _link(label: str, url: str) -> Link:
    scheme = urlsplit(url.strip()).scheme.lower() if url else ""
    return Link(label, url, scheme in ("http", "https"))


def _person(name: str | None, email: str | None) -> str:
    name, email = (name or "").strip(), (email or "").strip()
    if name and email:
        return f"{name} <{email}>" if "<" not in email else f"{name}, {email}"
    return name or email


def metadata_of(release: ReleaseSnap, read_blob: ReadBlob) -> Metadata:
    raw: RawMetadata = release_metadata(release, read_blob)
    expression = (raw.get("license_expression") or "").strip()
    licence = expression or (raw.get("license") or "").strip()
    return Metadata(
        summary=(raw.get("summary") or "").strip(),
        description=raw.get("description") or "",
        description_content_type=raw.get("description_content_type"),
        requires_python=(raw.get("requires_python") or "").strip(),
        licence=licence,
        licence_is_expression=bool(expression),
        urls=tuple(_link(label, url) for label, url in project_urls(raw).items()),
        classifiers=tuple(raw.get("classifiers") or ()),
        author=_person(raw.get("author"), raw.get("author_email")),
        maintainer=_person(raw.get("maintainer"), raw.get("maintainer_email")),
        keywords=tuple(k.strip() for k in raw.get("keywords") or () if k.strip()),
        requires_dist=tuple(raw.get("requires_dist") or ()),
    )


@dataclass(frozen=True, slots=True)
class FileView:
    filename: str
    url: str
    kind: str  # "wheel", "sdist" or the upload's packagetype
    python: str  # wheels: the python, abi and platform tags, each joined by "."
    abi: str
    platform: str
    size: int
    upload_time: datetime | None
    uploader: str  # the user's name; "" when unknown
    mirrored_from: str  # the upstream host of a mirrored or proxied file, else ""
    publisher: str  # trusted publishing: which CI job uploaded it, else ""
    sha256: str
    yanked: bool
    yanked_reason: str


_KINDS = {"bdist_wheel": "wheel", "sdist": "sdist"}


def _tags(filename: str) -> tuple[str, str, str]:
    try:
        _name, _version, _build, tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion):
        return "", "", ""
    return (
        ".".join(sorted({t.interpreter for t in tags})),
        ".".join(sorted({t.abi for t in tags})),
        ".".join(sorted({t.platform for t in tags})),
    )


def _publishers(
    session: Session, leaf: IndexRow, normalized: str, files: list[FileSnap]
) -> dict[str, str]:
    """Filename to the publisher's description, for files uploaded by trusted publishing."""
    times = [f.upload_time for f in files if f.upload_time is not None]
    if not times:
        return {}
    names = {f.filename for f in files}
    events = session.execute(
        select(AuditEventRow.detail).where(
            AuditEventRow.index_id == leaf.id,
            AuditEventRow.project == normalized,
            AuditEventRow.at >= min(times) - _AUDIT_SLACK,
            AuditEventRow.at <= max(times) + _AUDIT_SLACK,
            AuditEventRow.action == "upload",
        )
    ).scalars()
    by_file: dict[str, int] = {}
    for detail in events:
        if not isinstance(detail, dict):
            continue
        filename, publisher = detail.get("filename"), detail.get("publisher")
        if filename in names and isinstance(publisher, int):
            by_file[str(filename)] = publisher
    if not by_file:
        return {}
    rows = {
        row.id: row
        for row in session.scalars(
            select(PublisherRow).where(PublisherRow.id.in_(set(by_file.values())))
        )
    }
    return {name: describe(rows[pid]) for name, pid in by_file.items() if pid in rows}


def files_of(session: Session, source: ProjectSource, release: ReleaseSnap) -> list[FileView]:
    """The shown files of ``release``, by filename, with who or what brought each."""
    files = sorted((f for f in release.files if not f.deleted), key=lambda f: f.filename)
    if not files:
        return []
    rows: dict[str, Any] = {
        row.filename: row
        for row in session.execute(
            select(FileRow.filename, FileRow.source_url, UserRow.name)
            .outerjoin(UserRow, UserRow.id == FileRow.uploaded_by)
            .where(
                FileRow.index_id == source.leaf.id,
                FileRow.filename.in_([f.filename for f in files]),
            )
        )
    }
    publishers = _publishers(session, source.leaf, source.snap.normalized, files)
    out = []
    for f in files:
        row = rows.get(f.filename)
        source_url = row.source_url if row is not None else None
        python, abi, platform = _tags(f.filename) if f.filename.endswith(".whl") else ("", "", "")
        out.append(
            FileView(
                filename=f.filename,
                url=file_url(f.sha256, f.filename, "", source.snap.files_root),
                kind=_KINDS.get(f.packagetype, f.packagetype),
                python=python,
                abi=abi,
                platform=platform,
                size=f.size,
                upload_time=f.upload_time,
                uploader=(row.name or "") if row is not None else "",
                mirrored_from=(urlsplit(source_url).hostname or "") if source_url else "",
                publisher=publishers.get(f.filename, ""),
                sha256=f.sha256,
                yanked=f.yanked or release.yanked,
                yanked_reason=(f.yanked_reason if f.yanked else release.yanked_reason),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Upstream:
    url: str  # without credentials or query
    kind: str


def upstream_of(index: IndexRow) -> Upstream | None:
    """Where a mirror or proxy index takes its projects from, safe to show anyone."""
    if index.kind not in ("mirror", "proxy"):
        return None
    url = str((index.options or {}).get("upstream", ""))
    if not url:
        return None
    shown = urlsplit(public_url(url))._replace(query="", fragment="").geturl()
    return Upstream(shown, index.kind)


@dataclass(frozen=True, slots=True)
class Snippet:
    tool: str
    command: str


def install_snippets(base: str, index: str, name: str, version: str | None) -> list[Snippet]:
    """Commands that install the project (``version`` pinned) from this index."""
    simple = f"{base.rstrip('/')}/{index}/simple/"
    requirement = shlex.quote(f"{name}=={version}" if version else name)
    url = shlex.quote(simple)
    return [
        Snippet("pip", f"pip install --index-url {url} {requirement}"),
        Snippet("uv", f"uv pip install --index-url {url} {requirement}"),
        Snippet(
            "poetry",
            f"poetry source add --priority=supplemental {index} {url}"
            f" && poetry add --source {index} {requirement}",
        ),
        Snippet("pdm", f"pdm config pypi.{index}.url {url} && pdm add {requirement}"),
    ]
