"""Indexes, users, yank/unyank and soft delete: the administrative writes.

Every function runs inside :meth:`Database.write` and journals what it changed;
the caller then lets the renderer catch up.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tilsit.auth.audit import record_event
from tilsit.auth.user_names import add_user, find_user_named
from tilsit.db.live import with_deleted
from tilsit.db.models import FileRow, IndexRow, ProjectRow, ReleaseRow, UpstreamStateRow, UserRow
from tilsit.index import errors, owners
from tilsit.index.journal import record
from tilsit.index.rows import soft_delete_project
from tilsit.index.upstream_options import check_upstream_options, public_url
from tilsit.spec.names import normalize
from tilsit.spec.versions import version_key

__all__ = [
    "INDEX_KINDS",
    "change_index",
    "check_deletable",
    "create_index",
    "create_user",
    "delete_file",
    "delete_index",
    "delete_project",
    "delete_release",
    "get_index",
    "get_project",
    "get_release",
    "get_user",
    "set_yanked",
]

INDEX_KINDS = ("hosted", "mirror", "proxy", "virtual")
# Index names become the first URL segment and a tree directory; these are
# taken by other routes.
_RESERVED = {
    "packages",
    "simple",
    "legacy",
    "pypi",
    "project",
    "account",
    "admin",
    "_",
    "tuf",
    "static",
}
_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def get_index(session: Session, name: str) -> IndexRow:
    index = session.scalars(select(IndexRow).where(IndexRow.name == name)).one_or_none()
    if index is None:
        raise errors.UnknownIndex(f"There is no index named {name!r}")
    return index


def create_index(
    session: Session,
    name: str,
    kind: str = "hosted",
    actor: str = "",
    options: dict[str, object] | None = None,
) -> IndexRow:
    """Create an index; mirror and proxy indexes need ``options["upstream"]`` (a URL)."""
    if not _INDEX_NAME.fullmatch(name) or name in _RESERVED:
        raise errors.InvalidUpload(
            f"Invalid index name {name!r}: use lower-case letters, digits, '.', '-' and '_'"
            f" (not one of {', '.join(sorted(_RESERVED))})"
        )
    if kind not in INDEX_KINDS:
        raise errors.InvalidUpload(f"Unknown index kind {kind!r}: expected one of {INDEX_KINDS}")
    options = check_upstream_options(kind, options or {})
    holder = session.scalars(
        select(IndexRow).where(IndexRow.name == name).execution_options(**with_deleted())
    ).first()
    if holder is not None and holder.deleted_at is not None:
        # Its journal, audit events, files and TUF keys still name it: a new index
        # under the name would inherit them (and clients' pinned roots).
        raise errors.InvalidUpload(
            f"The index named {name!r} was deleted on {holder.deleted_at:%Y-%m-%d}; its name"
            " stays taken while its rows exist: choose another name"
        )
    if holder is not None:
        raise errors.InvalidUpload(f"An index named {name!r} already exists")
    index = IndexRow(name=name, kind=kind, options=options)
    session.add(index)
    session.flush()
    record(session, index, "create index", actor=actor, detail={"kind": kind})
    return index


# What pins a mirror or proxy to the upstream it has synced from: changing the URL drops it.
_UPSTREAM_FACTS = ("synced_filters",)


def change_index(
    session: Session, index: IndexRow, changes: dict[str, object | None], actor: str = ""
) -> list[str]:
    """Apply ``changes`` (None drops a setting) to a mirror's or proxy's upstream options.

    The result is checked as a whole by the validator ``create_index`` uses. A new
    upstream URL starts the index over against the new upstream: its upstream state
    (serials, root ETag) and every project's upstream serial, ETag and fetch time
    are cleared, so the next mirror sync compares every project and the proxy
    revalidates every page unconditionally; nothing is deleted until that sync
    finds it gone. Returns the names of the settings that changed (audited, never
    their values: credentials stay out of the log).
    """
    before = dict(index.options or {})
    after = dict(before)
    # Earlier versions stored these on either kind, where they never had an effect.
    after.pop("interval" if index.kind == "proxy" else "ttl", None)
    for key, value in changes.items():
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    after = check_upstream_options(index.kind, after)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if not changed:
        return []
    if "upstream" in changed:
        for key in _UPSTREAM_FACTS:
            after.pop(key, None)
        state = session.get(UpstreamStateRow, index.id)
        if state is not None:
            state.upstream_serial = state.synced_serial = None
            state.root_etag = None
        session.execute(
            update(ProjectRow)
            .where(ProjectRow.index_id == index.id)
            .values(upstream_serial=None, upstream_etag=None, fetched_at=None)
        )
    index.options = after
    detail: dict[str, object] = {"changed": changed}
    if "upstream" in changed:
        detail["upstream"] = public_url(str(after["upstream"]))
    record_event(
        session, "index.changed", actor_name=actor or "tilsit", index_id=index.id, detail=detail
    )
    return changed


def check_deletable(name: str, default_index: str) -> None:
    """Refuse to delete the default index: it is served at /simple/ and made at start."""
    if name == default_index:
        raise errors.InvalidUpload(
            f"{name!r} is the default index (setting default_index): it cannot be deleted;"
            " make another index the default first"
        )


def delete_index(session: Session, name: str, *, default_index: str, actor: str = "") -> IndexRow:
    """Soft-delete index ``name``: from now on no query sees it (:mod:`tilsit.db.live`).

    Its rows stay (the name with them); the renderer removes its tree at the next
    catch-up, the scheduler stops syncing it, and its blobs are left to fsck.
    """
    check_deletable(name, default_index)
    index = get_index(session, name)
    holders = owners.containing_virtuals(session, index.id)
    if holders:
        names = ", ".join(repr(v.name) for v in holders)
        raise errors.InvalidUpload(
            f"Index {name!r} is a member of virtual index {names}: remove it there first"
            " (tilsit index set VIRTUAL --members ...)"
        )
    index.deleted_at = datetime.now(UTC)
    record(session, index, "delete index", actor=actor)
    record_event(
        session,
        "index.deleted",
        actor_name=actor or "tilsit",
        index_id=index.id,
        detail={"name": index.name, "kind": index.kind},
    )
    return index


def get_user(session: Session, name: str) -> UserRow:
    user = find_user_named(session, name)  # "ALICE" finds alice: names are one under their key
    if user is None:
        raise errors.IndexError_(f"There is no user named {name!r}")
    return user


def create_user(session: Session, name: str, *, admin: bool = False) -> UserRow:
    try:
        return add_user(session, name, admin=admin)
    except ValueError as exc:  # InvalidUserName, UserNameTaken (naming the holder)
        raise errors.IndexError_(str(exc)) from exc


def get_project(session: Session, index: IndexRow, name: str) -> ProjectRow:
    project = session.scalars(
        select(ProjectRow).where(
            ProjectRow.index_id == index.id, ProjectRow.normalized == normalize(name)
        )
    ).one_or_none()
    if project is None or project.deleted_at is not None:
        raise errors.UnknownProject(f"There is no project {name!r} in index {index.name!r}")
    return project


def get_release(session: Session, project: ProjectRow, version: str) -> ReleaseRow:
    # Any spelling of the version finds its release ("3.0.0" finds "3.0").
    release = session.scalars(
        select(ReleaseRow).where(
            ReleaseRow.project_id == project.id, ReleaseRow.version_key == version_key(version)
        )
    ).one_or_none()
    if release is None or release.deleted_at is not None:
        raise errors.UnknownRelease(f"Project {project.name!r} has no release {version!r}")
    return release


def set_yanked(
    session: Session,
    index: IndexRow,
    project_name: str,
    version: str,
    *,
    yanked: bool,
    reason: str = "",
    actor: str = "",
    by: UserRow | None = None,
    ip: str = "",
) -> int:
    """``actor`` names who acted in the journal; ``by`` is that user, if one, for the audit log."""
    project = get_project(session, index, project_name)
    release = get_release(session, project, version)
    release.yanked = yanked
    release.yanked_reason = reason if yanked else ""
    _audit(
        session,
        "yank" if yanked else "unyank",
        index,
        project,
        actor,
        by,
        ip,
        {"version": release.version, "reason": release.yanked_reason},
    )
    return record(
        session,
        index,
        "yank release" if yanked else "unyank release",
        project=project,
        release=release,
        actor=actor,
        detail={"version": release.version, "reason": release.yanked_reason},
    )


def _audit(
    session: Session,
    action: str,
    index: IndexRow,
    project: ProjectRow,
    actor: str,
    by: UserRow | None,
    ip: str,
    detail: dict[str, object],
) -> None:
    # Yank and delete are audited like uploads, whoever makes them (CLI, web page).
    record_event(
        session,
        action,
        actor=by,
        actor_name=by.name if by is not None else (actor or "tilsit"),
        ip=ip,
        user=by,
        index_id=index.id,
        project=project.normalized,
        detail=detail,
    )


def delete_file(
    session: Session,
    index: IndexRow,
    filename: str,
    actor: str = "",
    by: UserRow | None = None,
    ip: str = "",
) -> int:
    row = session.scalars(
        select(FileRow).where(FileRow.index_id == index.id, FileRow.filename == filename)
    ).one_or_none()
    if row is None or row.deleted_at is not None:
        raise errors.UnknownFile(f"There is no file {filename!r} in index {index.name!r}")
    row.deleted_at = datetime.now(UTC)
    _audit(
        session,
        "delete",
        index,
        row.release.project,
        actor,
        by,
        ip,
        {"what": "file", "filename": filename, "version": row.release.version},
    )
    return record(
        session,
        index,
        "remove file",
        project=row.release.project,
        release=row.release,
        actor=actor,
        detail={"filename": filename, "version": row.release.version},
    )


def delete_release(
    session: Session,
    index: IndexRow,
    project_name: str,
    version: str,
    actor: str = "",
    by: UserRow | None = None,
    ip: str = "",
) -> int:
    project = get_project(session, index, project_name)
    release = get_release(session, project, version)
    now = datetime.now(UTC)
    release.deleted_at = now
    for f in release.files:
        f.deleted_at = f.deleted_at or now
    _audit(
        session,
        "delete",
        index,
        project,
        actor,
        by,
        ip,
        {"what": "release", "version": release.version},
    )
    return record(
        session,
        index,
        "remove release",
        project=project,
        release=release,
        actor=actor,
        detail={"version": release.version},
    )


def delete_project(
    session: Session,
    index: IndexRow,
    project_name: str,
    actor: str = "",
    by: UserRow | None = None,
    ip: str = "",
) -> int:
    project = get_project(session, index, project_name)
    soft_delete_project(project, datetime.now(UTC))
    _audit(session, "delete", index, project, actor, by, ip, {"what": "project"})
    return record(session, index, "remove project", project=project, actor=actor)
