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

from tilsit.auth import switches
from tilsit.auth.audit import record_event
from tilsit.auth.oidc.authority import publisher_refusal
from tilsit.auth.policy import two_factor_refusal
from tilsit.auth.ratelimit import RateLimited, consume, project_create_refusal
from tilsit.config.limits import Limit
from tilsit.db.models import (
    FileRow,
    IndexRow,
    ProjectRow,
    PublisherRow,
    RoleRow,
    TokenRow,
    UserRow,
)
from tilsit.dists import DistInfo, InvalidDistribution, Limits, inspect_distribution
from tilsit.index import errors
from tilsit.index.access import (
    may_create,
    may_read,
    may_read_project,
    may_upload,
    pending_reservation,
    token_index_id,
)
from tilsit.index.journal import record
from tilsit.index.owners import as_written, reservation_of
from tilsit.index.releases import same_distribution
from tilsit.index.rows import release_for_new_file
from tilsit.spec.filenames import DistFilename, InvalidDistFilename, parse_dist_filename
from tilsit.spec.names import (
    InvalidProjectName,
    InvalidVersionText,
    confusable_key,
    normalize,
    validate_name,
    validate_version,
)
from tilsit.store.blobs import BlobStore

__all__ = [
    "Digests",
    "UploadForm",
    "UploadResult",
    "UploadRules",
    "Uploader",
    "check_form",
    "store_upload",
    "uploader_for",
]


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
class UploadRules:
    """Server policy that applies to an upload (from the settings)."""

    require_2fa: str = "off"
    critical_percent: float = 1.0
    project_create_limits: tuple[Limit, ...] = ()
    ip: str = ""
    # The index of a project-limited token made without one (see token_index_id).
    default_index: str = "main"


@dataclass(frozen=True)
class Uploader:
    """Who an API token acts for: a user, or a trusted publisher (a CI identity)."""

    token: TokenRow
    user: UserRow | None
    publisher: PublisherRow | None

    @property
    def name(self) -> str:
        if self.user is not None:
            return self.user.name
        assert self.publisher is not None
        return f"trusted publisher #{self.publisher.id} ({self.publisher.kind})"


def uploader_for(session: Session, token: TokenRow) -> Uploader:
    if token.publisher_id is not None:
        publisher = session.get(PublisherRow, token.publisher_id)
        # The publisher acts on its creator's authority, which may have ended since the mint.
        refusal = publisher_refusal(session, publisher)
        if refusal is not None:
            raise errors.Forbidden(refusal)
        assert publisher is not None
        return Uploader(token, None, publisher)
    user = session.get(UserRow, token.user_id) if token.user_id is not None else None
    if user is None or not user.is_active:
        raise errors.Forbidden("The account this API token belongs to is disabled")
    return Uploader(token, user, None)


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
    if form.get("attestations"):
        # Storing the file without them would publish it as if it had none; refusing says
        # so, as PyPI refuses attestations it cannot verify.
        raise errors.InvalidUpload(
            "Attestations (PEP 740) are not verified or served by this index yet: upload"
            " without them (twine upload without --attestations)"
        )
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
    try:
        validate_version(str(dist.version))
    except InvalidVersionText as exc:
        raise errors.InvalidUpload(f"Field 'version': {exc}") from exc
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


def _create_project(
    session: Session, index: IndexRow, name: str, owner: UserRow | None, *, reveal: bool = True
) -> ProjectRow:
    """Create project ``name``; ``reveal`` says whether the refusal may name a look-alike
    (not to a caller who may not read the index)."""
    normalized = normalize(name)
    key = confusable_key(name)
    similar = session.scalars(
        select(ProjectRow.name).where(ProjectRow.index_id == index.id, ProjectRow.confusable == key)
    ).first()
    if similar is not None:
        raise errors.ProjectNameTooSimilar(
            f"The name {name!r} is too similar to an existing project"
            + (f" {similar!r}" if reveal else "")
        )
    project = ProjectRow(index_id=index.id, name=name, normalized=normalized, confusable=key)
    session.add(project)
    session.flush()
    if owner is not None:
        session.add(RoleRow(project_id=project.id, user_id=owner.id, role="Owner"))
    return project


def _authorize(
    session: Session,
    index: IndexRow,
    uploader: Uploader,
    project: ProjectRow | None,
    dist: DistFilename,
    rules: UploadRules,
) -> None:
    """Refuse an upload this identity may not make; checked before the file's history."""
    token = uploader.token
    if switches.enabled(session, switches.READ_ONLY):
        raise errors.Unavailable("Read-only mode: this server accepts no uploads for now")
    if switches.enabled(session, switches.NO_UPLOADS):
        raise errors.Unavailable("Uploads are disabled on this server for now")
    limited_to = token_index_id(session, token, rules.default_index)
    if limited_to is not None and limited_to != index.id:
        raise errors.Forbidden(f"This API token is not valid for index {index.name!r}")
    if token.projects is not None and dist.name not in token.projects:
        raise errors.Forbidden(f"This API token is not valid for project {dist.name!r}")
    publisher, user = uploader.publisher, uploader.user
    if publisher is not None:
        if publisher.index_id != index.id:
            raise errors.Forbidden(
                f"This trusted publisher is not configured for index {index.name!r}"
            )
        if project is not None and publisher.project_id != project.id:
            raise errors.Forbidden(
                f"This trusted publisher may not upload to project {project.name!r}"
            )
        if project is None and publisher.pending_name != dist.name:
            raise errors.Forbidden(f"This trusted publisher may not create project {dist.name!r}")
    else:
        assert user is not None
        if project is not None and not may_upload(session, user, project):
            if not may_read_project(session, user, project):
                raise _not_found(index, user, dist)
            raise errors.Forbidden(
                f"User {user.name!r} may not upload to project {project.name!r}:"
                " ask an owner for a role"
            )
        if project is None and not may_create(session, user, index):
            if not may_read(session, user, index):
                raise _not_found(index, user, dist)
            raise errors.Forbidden(
                f"User {user.name!r} may not create projects in index {index.name!r}:"
                " ask an administrator for the 'create' permission"
            )
        refusal = two_factor_refusal(
            session, rules.require_2fa, rules.critical_percent, user, project
        )
        if refusal is not None:
            raise errors.SecondFactorRequired(refusal)
    if project is None:
        _check_reservation(session, index, uploader, dist)
        _check_namespace(session, index, dist)
    if project is None and switches.enabled(session, switches.NO_NEW_PROJECTS):
        raise errors.Forbidden("New projects are not accepted on this server for now")


def _not_found(index: IndexRow, user: UserRow, dist: DistFilename) -> errors.UnknownProject:
    """The one answer, for a project that exists and one that does not, to a user who may
    neither read it nor create it in a private index: its existence is not theirs to learn."""
    return errors.UnknownProject(
        f"Not Found: index {index.name!r} has no project {dist.name!r} that user"
        f" {user.name!r} may upload to"
    )


def _check_reservation(
    session: Session, index: IndexRow, uploader: Uploader, dist: DistFilename
) -> None:
    """Refuse to create a name that a pending trusted publisher holds for its first upload
    (see :func:`pending_reservation`): only that publisher, the user who registered it and
    administrators may."""
    held = pending_reservation(session, index, dist.name)
    if held is None:
        return
    user, publisher = uploader.user, uploader.publisher
    if publisher is not None and publisher.id == held.id:
        return
    if user is not None and (user.is_admin or held.created_by == user.id):
        return
    raise errors.Forbidden(
        f"The project name {dist.name!r} is reserved in index {index.name!r} by a pending"
        f" trusted publisher (for {held.pending_name!r}): only that publisher, the user who"
        " registered it or an administrator may create it"
    )


def _check_namespace(session: Session, index: IndexRow, dist: DistFilename) -> None:
    """Refuse to create a name, or a look-alike of one, that another hosted index
    reserved (``tilsit index reserve``): the reserving index alone supplies it."""
    name = normalize(dist.name)
    held = reservation_of(session, name)
    if held is None or held.index_id == index.id:
        return
    holder = session.get(IndexRow, held.index_id)
    shown = as_written(held.pattern, held.prefix)
    raise errors.Forbidden(
        f"The project name {dist.name!r} is reserved by index"
        f" {holder.name if holder is not None else '?'!r} (as {shown!r}): upload it there"
    )


def store_upload(
    session: Session,
    blobs: BlobStore,
    index: IndexRow,
    uploader: Uploader,
    checked: CheckedUpload,
    rules: UploadRules | None = None,
) -> UploadResult:
    """Record a checked upload; must run inside :meth:`Database.write`."""
    rules = rules or UploadRules()
    form, dist, info = checked.form, checked.dist, checked.info
    user, publisher, token = uploader.user, uploader.publisher, uploader.token

    # Permission before anything else, so a stranger learns nothing about the project's files.
    project = session.scalars(
        select(ProjectRow).where(
            ProjectRow.index_id == index.id, ProjectRow.normalized == dist.name
        )
    ).one_or_none()
    _authorize(session, index, uploader, project, dist, rules)

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
        # Administrators and bulk tokens are not limited: they load whole closures.
        if user is not None and not user.is_admin and not uploader.token.bulk:
            try:
                consume(session, f"project-create:user:{user.id}", rules.project_create_limits)
            except RateLimited as exc:
                raise errors.TooManyRequests(project_create_refusal(exc), exc.retry_after) from exc
        # A pending publisher's project is owned by the user who set the publisher up.
        owner = user
        if publisher is not None and publisher.created_by is not None:
            owner = session.get(UserRow, publisher.created_by)
        reveal = user is None or may_read(session, user, index)
        project = _create_project(session, index, form.get("name"), owner, reveal=reveal)
        if publisher is not None:
            publisher.project_id = project.id
            publisher.pending_name = None
    if project.deleted_at is not None:
        project.deleted_at = None  # a deleted name can be used again; its old files stay gone
    version = str(dist.version)
    release = release_for_new_file(session, project, version)
    duplicate = same_distribution(release, dist)
    if duplicate is not None:
        what = "An sdist" if dist.packagetype == "sdist" else "A wheel with the same tags"
        equal = (
            f" (version {version!r} equals {release.version!r})"
            if version != release.version
            else ""
        )
        raise errors.DuplicateDistribution(
            f"{what} already exists in release {release.version!r} of project"
            f" {project.name!r}: {duplicate.filename!r}{equal}. Use a new version number."
        )

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
            uploaded_by=user.id if user is not None else None,
        )
    )
    actor = uploader.name
    if created:
        record(session, index, "create project", project=project, actor=actor)
        record_event(
            session,
            "project.created",
            actor=user,
            actor_name=actor,
            ip=rules.ip,
            user=user,
            index_id=index.id,
            project=project.normalized,
        )
    serial = record(
        session,
        index,
        "add file",
        project=project,
        release=release,
        actor=actor,
        detail={"version": version, "filename": dist.filename, "sha256": form.digests.sha256},
    )
    record_event(
        session,
        "upload",
        actor=user,
        actor_name=actor,
        ip=rules.ip,
        user=user,
        index_id=index.id,
        project=project.normalized,
        detail={
            "filename": dist.filename,
            "version": version,
            "sha256": form.digests.sha256,
            "token": token.display_prefix,
            **({"publisher": publisher.id} if publisher is not None else {}),
        },
    )
    return UploadResult(True, serial, project.normalized, dist.filename)
