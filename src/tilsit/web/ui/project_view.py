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
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from tilsit.auth.oidc.publishers import describe
from tilsit.db.models import (
    AuditEventRow,
    FileRow,
    IndexRow,
    PolicyRow,
    ProjectRow,
    PublisherRow,
    ReleaseRow,
    UserRow,
)
from tilsit.index.upstream_options import public_url
from tilsit.render.legacy import project_urls, release_metadata
from tilsit.render.snapshot import FileSnap, ProjectSnap, ProjectSnapshots, ReleaseSnap
from tilsit.render.snapshot import version_key as snapshot_order
from tilsit.render.virtual import explain
from tilsit.spec.versions import version_key
from tilsit.store.tree import file_url, private_root

__all__ = [
    "FileView",
    "Metadata",
    "ProjectSource",
    "ReleaseItem",
    "default_release",
    "files_of",
    "find_release",
    "install_snippets",
    "metadata_of",
    "policy_version",
    "release_of",
    "source_of",
    "upstream_of",
]

ReadBlob = Callable[[str], bytes | None]

# How far an upload's audit event may lie from its file's upload time: both are taken
# in the same write transaction, so a minute is generous.
_AUDIT_SLACK = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ReleaseItem:
    """A release in the history: shown (a file of it is live), newest first."""

    @property
    def prerelease(self) -> bool:
        return self.rank == 1

    version: str
    yanked: bool  # as a whole, or every shown file (as upstream pages yank files)
    yanked_reason: str
    rank: int  # 0 final, 1 pre- or dev release, 2 not a PEP 440 version
    uploaded: datetime | None  # the first file's upload time; None: unknown (mirrored)
    release_id: int | None = None  # its row, where the release list came from the rows


@dataclass(frozen=True, slots=True)
class ProjectSource:
    """A project as an index's pages show it, and where its files come from."""

    name: str
    normalized: str
    status: str  # PEP 792
    status_reason: str
    files_root: str
    leaf: IndexRow  # the hosted, mirror or proxy index that holds the files
    releases: tuple[ReleaseItem, ...]  # newest first
    owner_rule: str | None = None  # virtual indexes: the ownership rule that chose ``leaf``
    snap: ProjectSnap | None = None  # virtual indexes: the snapshot after the policy


def _rank(version: str) -> int:
    """0 for a final release, 1 for a pre- or dev release, 2 for a version that is not
    PEP 440 (parsed once per version string per process: the renderer's cache)."""
    _kind, parsed = snapshot_order(version)
    if not isinstance(parsed, Version):
        return 2
    return 1 if parsed.is_prerelease else 0


def _items(snap: ProjectSnap) -> tuple[ReleaseItem, ...]:
    items = []
    for release in reversed(snap.releases):
        live = [f for f in release.files if not f.deleted]
        if release.deleted or not live:
            continue
        every = all(f.yanked for f in live)
        times = [f.upload_time for f in live if f.upload_time is not None]
        items.append(
            ReleaseItem(
                release.version,
                release.yanked or every,
                release.yanked_reason
                if release.yanked
                else next((f.yanked_reason for f in live if f.yanked_reason), ""),
                _rank(release.version),
                min(times, default=None),
            )
        )
    return tuple(items)


def _summaries(session: Session, project_id: int) -> tuple[ReleaseItem, ...]:
    """The shown releases of a project from two grouped queries, without reading each file:
    a history of 2,000 releases must not cost 6,000 file objects."""
    releases = session.execute(
        select(
            ReleaseRow.id, ReleaseRow.version, ReleaseRow.yanked, ReleaseRow.yanked_reason
        ).where(ReleaseRow.project_id == project_id, ReleaseRow.deleted_at.is_(None))
    ).all()
    ids = select(ReleaseRow.id).where(ReleaseRow.project_id == project_id)
    files = {
        row.release_id: row
        for row in session.execute(
            select(
                FileRow.release_id,
                func.min(FileRow.upload_time).label("uploaded"),
                func.sum(case((FileRow.yanked, 0), else_=1)).label("unyanked"),
                func.max(case((FileRow.yanked, FileRow.yanked_reason), else_="")).label("reason"),
            )
            .where(FileRow.release_id.in_(ids), FileRow.deleted_at.is_(None))
            .group_by(FileRow.release_id)
        )
    }
    shown = sorted((r for r in releases if r.id in files), key=lambda r: snapshot_order(r.version))
    items = []
    for release in reversed(shown):
        summary = files[release.id]
        every = not summary.unyanked
        items.append(
            ReleaseItem(
                release.version,
                release.yanked or every,
                release.yanked_reason if release.yanked else (summary.reason or ""),
                _rank(release.version),
                summary.uploaded,
                release.id,
            )
        )
    return tuple(items)


def source_of(
    session: Session,
    snapshots: ProjectSnapshots,
    index: IndexRow,
    project: ProjectRow,
    now: datetime,
    read_blob: ReadBlob,
) -> tuple[ProjectSource | None, str | None]:
    """The project as the index shows it (a virtual index's after its policy), or None
    and why not."""
    if index.kind == "virtual":
        view = explain(session, snapshots, index, project.normalized, now, read_blob)
        if view.snap is None or view.snap.deleted or view.owner is None:
            return None, view.reason
        leaf = session.scalars(select(IndexRow).where(IndexRow.name == view.owner)).first()
        if leaf is None:
            return None, view.reason
        snap = view.snap
        return ProjectSource(
            snap.name,
            snap.normalized,
            snap.status,
            snap.status_reason,
            snap.files_root,
            leaf,
            _items(snap),
            view.rule,
            snap,
        ), None
    return ProjectSource(
        project.name,
        project.normalized,
        project.status,
        "",
        private_root(index.name) if index.private else "",
        index,
        _summaries(session, project.id),
    ), None


def release_of(session: Session, source: ProjectSource, item: ReleaseItem) -> ReleaseSnap:
    """The shown release with its files: from the judged snapshot, or read for it alone."""
    if source.snap is not None:
        return next(r for r in source.snap.releases if r.version == item.version)
    row = session.execute(
        select(ReleaseRow.yanked, ReleaseRow.yanked_reason, ReleaseRow.last_serial).where(
            ReleaseRow.id == item.release_id
        )
    ).one()
    files = tuple(
        FileSnap(
            filename=f.filename,
            packagetype=f.packagetype,
            python_version=f.python_version,
            size=f.size,
            sha256=f.sha256,
            md5=f.md5,
            blake2_256=f.blake2_256,
            metadata_sha256=f.metadata_sha256,
            requires_python=f.requires_python,
            upload_time=f.upload_time,
            deleted=f.deleted_at is not None,
            yanked=f.yanked,
            yanked_reason=f.yanked_reason,
            cached=f.cached,
            metadata_cached=f.metadata_cached,
            mirrored=f.source_url is not None,
        )
        for f in session.scalars(select(FileRow).where(FileRow.release_id == item.release_id))
    )
    return ReleaseSnap(item.version, row.yanked, row.yanked_reason, False, files, row.last_serial)


def policy_version(session: Session, index: IndexRow) -> int:
    """The version of a virtual index's policy (0: none), part of its pages' cache key:
    a policy change is journaled for the index, not for each project it hides."""
    if index.kind != "virtual":
        return 0
    return session.scalar(select(PolicyRow.version).where(PolicyRow.index_id == index.id)) or 0


def find_release(source: ProjectSource, version: str) -> ReleaseItem | None:
    """The shown release ``version`` names, as spelled or by PEP 440 equality."""
    exact = next((r for r in source.releases if r.version == version), None)
    if exact is not None:
        return exact
    wanted = version_key(version)
    return next((r for r in source.releases if version_key(r.version) == wanted), None)


def default_release(source: ProjectSource) -> ReleaseItem | None:
    """PyPI's choice for the project page (:func:`tilsit.render.legacy.latest_release`):
    the highest release by, in turn, not yanked, final (a version that is not PEP 440
    counts as neither), then version."""
    if not source.releases:
        return None

    # releases are newest first: the lowest key wins, ties go to the first (highest).
    return min(source.releases, key=lambda item: (item.yanked, item.rank))


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
    publishers = _publishers(session, source.leaf, source.normalized, files)
    out = []
    for f in files:
        row = rows.get(f.filename)
        source_url = row.source_url if row is not None else None
        python, abi, platform = _tags(f.filename) if f.filename.endswith(".whl") else ("", "", "")
        out.append(
            FileView(
                filename=f.filename,
                url=file_url(f.sha256, f.filename, "", source.files_root),
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
