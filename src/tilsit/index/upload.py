"""Accepting an upload: the form twine, ``uv publish``, poetry, pdm and hatch send.

Everything that can be checked is checked before anything is stored: form
fields and digests, the filename, the archive and its core metadata, then (under
the writer lock) the filename's history and the project name. Only then are the
blobs written and fsynced, and the rows that name them committed. A refused
upload leaves no blob, no row and no page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.models import FileRow, IndexRow, ProjectRow, RoleRow, TokenRow, UserRow
from tilsit.dists import DistInfo, InvalidDistribution, Limits, inspect_distribution
from tilsit.index import errors
from tilsit.index.journal import record
from tilsit.index.rows import release_for_new_file
from tilsit.spec.filenames import DistFilename, InvalidDistFilename, parse_dist_filename
from tilsit.spec.names import InvalidProjectName, confusable_key, normalize, validate_name
from tilsit.store.blobs import BlobStore

__all__ = ["Digests", "UploadForm", "UploadResult", "check_form", "store_upload"]

UPLOADER_ROLES = ("Owner", "Maintainer")


@dataclass(frozen=True)
class Digests:
    """Computed by the web layer while the ``content`` part streamed to disk."""

    size: int
    sha256: str
    md5: str
    blake2_256: str


@dataclass(frozen=True)
class UploadForm:
    fields: dict[str, list[str]]
    content_path: Path
    content_filename: str
    digests: Digests

    def get(self, name: str) -> str:
        """The first non-empty value of a field ("" when absent): clients repeat and blank fields."""
        return next((v.strip() for v in self.fields.get(name, []) if v.strip()), "")


@dataclass(frozen=True)
class UploadResult:
    created: bool
    serial: int
    project: str
    filename: str


@dataclass(frozen=True)
class CheckedUpload:
    form: UploadForm
    dist: DistFilename
    info: DistInfo


def check_form(form: UploadForm, limits: Limits | None = None) -> CheckedUpload:
    """All checks that need no database: fields, digests, filename, archive, metadata."""
    action = form.get(":action")
    if action != "file_upload":
        raise errors.InvalidUpload(
            f"Unsupported ':action' {action!r}: only 'file_upload' is supported"
            if action
            else "Missing ':action' field: expected 'file_upload'"
        )
    protocol = form.get("protocol_version")
    if protocol and protocol != "1":
        raise errors.InvalidUpload(f"Unknown protocol_version {protocol!r}: expected '1'")
    for field in ("name", "version", "filetype"):
        if not form.get(field):
            raise errors.InvalidUpload(f"Missing required field {field!r}")
    _check_digests(form)
    try:
        dist = parse_dist_filename(form.content_filename)
    except InvalidDistFilename as exc:
        raise errors.InvalidUpload(str(exc)) from exc
    if form.get("filetype") != dist.packagetype:
        raise errors.InvalidUpload(
            f"Field 'filetype' is {form.get('filetype')!r} but {dist.filename!r} is a {dist.packagetype}"
        )
    try:
        validate_name(form.get("name"))
    except InvalidProjectName as exc:
        raise errors.InvalidUpload(f"Field 'name': {exc}") from exc
    if normalize(form.get("name")) != dist.name:
        raise errors.InvalidUpload(
            f"Field 'name' is {form.get('name')!r} but the filename {dist.filename!r} is for"
            f" project {dist.name!r}"
        )
    try:
        form_version = Version(form.get("version"))
    except InvalidVersion as exc:
        raise errors.InvalidUpload(
            f"Field 'version': {form.get('version')!r} is not a valid version"
        ) from exc
    if form_version != dist.version:
        raise errors.InvalidUpload(
            f"Field 'version' is {form.get('version')!r} but the filename {dist.filename!r} has"
            f" version {dist.version}"
        )
    if dist.version.local is not None:
        raise errors.InvalidUpload(
            f"Version {dist.version} has a local segment ('+{dist.version.local}'): local versions"
            " cannot be uploaded to an index"
        )
    try:
        info = inspect_distribution(form.content_path, dist, limits or Limits())
    except InvalidDistribution as exc:
        raise errors.InvalidUpload(f"Invalid distribution {dist.filename!r}: {exc}") from exc
    return CheckedUpload(form, dist, info)


def _check_digests(form: UploadForm) -> None:
    given = {
        "md5_digest": (form.get("md5_digest"), form.digests.md5),
        "sha256_digest": (form.get("sha256_digest"), form.digests.sha256),
        "blake2_256_digest": (form.get("blake2_256_digest"), form.digests.blake2_256),
    }
    if not any(value for value, _ in given.values()):
        raise errors.InvalidUpload(
            "Include at least one message digest: md5_digest, sha256_digest or blake2_256_digest"
        )
    for field, (value, actual) in given.items():
        if value and value.lower() != actual:
            raise errors.InvalidUpload(
                f"Field {field!r} is {value!r} but the uploaded file's digest is {actual!r}:"
                " the file was corrupted in transit or the digest is wrong"
            )


def _create_project(session: Session, index: IndexRow, name: str, user: UserRow) -> ProjectRow:
    normalized = normalize(name)
    key = confusable_key(name)
    similar = session.scalars(
        select(ProjectRow.name).where(ProjectRow.index_id == index.id, ProjectRow.confusable == key)
    ).first()
    if similar is not None:
        raise errors.ProjectNameTooSimilar(
            f"The name {name!r} is too similar to an existing project {similar!r}"
        )
    project = ProjectRow(index_id=index.id, name=name, normalized=normalized, confusable=key)
    session.add(project)
    session.flush()
    session.add(RoleRow(project_id=project.id, user_id=user.id, role="Owner"))
    return project


def _may_upload(session: Session, user: UserRow, project: ProjectRow) -> bool:
    if user.is_admin:
        return True
    role = session.scalar(
        select(RoleRow.role).where(RoleRow.project_id == project.id, RoleRow.user_id == user.id)
    )
    return role in UPLOADER_ROLES


def store_upload(
    session: Session,
    blobs: BlobStore,
    index: IndexRow,
    token: TokenRow,
    checked: CheckedUpload,
) -> UploadResult:
    """Record a checked upload; must run inside :meth:`Database.write`."""
    form, dist, info = checked.form, checked.dist, checked.info
    user = token.user
    if token.index_id is not None and token.index_id != index.id:
        raise errors.Forbidden(f"This API token is not valid for index {index.name!r}")
    if token.projects is not None and dist.name not in token.projects:
        raise errors.Forbidden(f"This API token is not valid for project {dist.name!r}")

    # Permission before anything else, so a stranger learns nothing about the project's files.
    project = session.scalars(
        select(ProjectRow).where(
            ProjectRow.index_id == index.id, ProjectRow.normalized == dist.name
        )
    ).one_or_none()
    if project is not None and not _may_upload(session, user, project):
        raise errors.Forbidden(
            f"User {user.name!r} may not upload to project {project.name!r}: ask an owner for a role"
        )

    existing = session.scalars(
        select(FileRow).where(FileRow.index_id == index.id, FileRow.filename == dist.filename)
    ).one_or_none()
    if existing is not None:
        if existing.deleted_at is not None:
            raise errors.FilenameReused(
                f"This filename has already been used: {dist.filename!r} was uploaded before and"
                " deleted, and a filename is never reused. Use a new version number."
            )
        if existing.sha256 == form.digests.sha256:
            return UploadResult(False, index.last_serial, dist.name, dist.filename)
        raise errors.FileExists(
            f"File already exists ({dist.filename!r}, with sha256 hash {existing.sha256}):"
            " a file of that name with other contents is in this index"
        )

    created = project is None
    if project is None:
        project = _create_project(session, index, form.get("name"), user)
    if project.deleted_at is not None:
        project.deleted_at = None  # a deleted name can be used again; its old files stay gone
    version = str(dist.version)
    release = release_for_new_file(session, project, version)

    # Durable blobs before the rows that name them (ARCHITECTURE principle 3).
    metadata_sha256 = blobs.put_bytes(info.metadata_bytes)
    blobs.put_file(form.content_path, form.digests.sha256)

    session.add(
        FileRow(
            release_id=release.id,
            index_id=index.id,
            filename=dist.filename,
            packagetype=dist.packagetype,
            python_version=dist.python_version,
            size=form.digests.size,
            sha256=form.digests.sha256,
            md5=form.digests.md5,
            blake2_256=form.digests.blake2_256,
            metadata_sha256=metadata_sha256,
            requires_python=info.requires_python,
            uploaded_by=user.id,
        )
    )
    if created:
        record(session, index, "create project", project=project, actor=user.name)
    serial = record(
        session,
        index,
        "add file",
        project=project,
        actor=user.name,
        detail={"version": version, "filename": dist.filename, "sha256": form.digests.sha256},
    )
    return UploadResult(True, serial, project.normalized, dist.filename)
