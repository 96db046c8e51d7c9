"""Which release a file joins: one release per version, however the version is spelled.

``3.0``, ``3.0.0`` and ``03.0`` are one version (PEP 440 compares release
numbers as integers, with trailing zeros dropped), so they are one release, as
on PyPI. A release keeps the spelling it was first seen under (``version``);
releases are found by :func:`version_key`, which every spelling of a version
shares (:mod:`tilsit.spec.versions`). Every path that creates releases (uploads, mirror and proxy
ingestion) goes through :func:`release_for_version`.
"""

from __future__ import annotations

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.models import FileRow, ProjectRow, ReleaseRow
from tilsit.spec.filenames import DistFilename
from tilsit.spec.versions import version_key

__all__ = ["release_for_version", "same_distribution"]


def release_for_version(session: Session, project: ProjectRow, version: str) -> ReleaseRow:
    """The release a new file of ``version`` joins: found by its key (revived if it was
    deleted), or created under this spelling."""
    key = version_key(version)
    release = session.scalars(
        select(ReleaseRow).where(ReleaseRow.project_id == project.id, ReleaseRow.version_key == key)
    ).one_or_none()
    if release is None:
        release = ReleaseRow(project_id=project.id, version=version, version_key=key)
        session.add(release)
        session.flush()
    elif release.deleted_at is not None:
        release.deleted_at = None
    return release


def same_distribution(release: ReleaseRow, dist: DistFilename) -> FileRow | None:
    """A live file of ``release`` that ``dist`` would duplicate, if any.

    A release has one sdist, and one wheel per build tag and set of tags: a
    second one under another spelling of the version (``pkg-3.0.0-py3-none-any.whl``
    beside ``pkg-3.0-py3-none-any.whl``) is the same distribution to an installer,
    which would pick one of them arbitrarily.
    """
    wanted = _wheel_identity(dist.filename) if dist.packagetype == "bdist_wheel" else None
    for row in release.files:
        if row.deleted_at is not None or row.packagetype != dist.packagetype:
            continue
        if dist.packagetype == "sdist" or _wheel_identity(row.filename) == wanted:
            return row
    return None


def _wheel_identity(filename: str) -> tuple[object, frozenset[object]] | None:
    """A wheel's build tag and tags (what tells two wheels of one version apart)."""
    try:
        _name, _version, build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    return build, frozenset(tags)
