"""SQLAlchemy models.

Rows are never deleted by the read/write paths: a delete sets ``deleted_at``,
so a filename once used in an index stays taken (``files`` is unique on
``(index_id, filename)``) and every blob a row names stays reachable.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Stable constraint names so Alembic migrations are the same on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class IndexRow(Base):
    __tablename__ = "indexes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_serial: Mapped[int] = mapped_column(BigInteger, default=0)
    # Kind-specific settings (upstream URL, filters, ...) for the later index kinds.
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A private index answers only users granted "read" (401 to anonymous requests).
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    # Who may create projects: "anyone" with an account, or only users granted "create".
    create_policy: Mapped[str] = mapped_column(String(20), default="anyone")
    # A deleted index is invisible to every query (tilsit.db.live); its rows stay.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ProjectRow(Base):
    __tablename__ = "projects"
    __table_args__ = (
        UniqueConstraint("index_id", "normalized", name="uq_projects_index_normalized"),
        Index("ix_projects_index_confusable", "index_id", "confusable"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"))
    name: Mapped[str] = mapped_column(String(200))
    normalized: Mapped[str] = mapped_column(String(200))
    confusable: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_serial: Mapped[int] = mapped_column(BigInteger, default=0)
    # Mirror and proxy indexes: the upstream's serial for this project (what
    # their pages show as _last-serial, so a mirror of tilsit is byte-identical),
    # the page's validator for conditional GETs, and when it was last fetched.
    upstream_serial: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    upstream_etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # PEP 792: "active", "archived", "deprecated" or "quarantined", as the upstream
    # says for a mirrored project (0007); virtual indexes' policies read it.
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")

    index: Mapped[IndexRow] = relationship()
    releases: Mapped[list[ReleaseRow]] = relationship(back_populates="project")


class ReleaseRow(Base):
    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("project_id", "version", name="uq_releases_project_version"),
        # One release per version however spelled (tilsit.index.releases.version_key).
        Index("ix_releases_project_version_key", "project_id", "version_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    version: Mapped[str] = mapped_column(String(100))  # as first seen (uploads: str(Version))
    version_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yanked_reason: Mapped[str] = mapped_column(Text, default="")
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The serial of the journal row that last changed this release (0006); its legacy
    # JSON shows it. None for releases a mirror or proxy made: theirs show the project's.
    last_serial: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    project: Mapped[ProjectRow] = relationship(back_populates="releases")
    files: Mapped[list[FileRow]] = relationship(back_populates="release")


def _upload_time_default(context: Any) -> datetime | None:
    """Now for a file uploaded here; None (unknown) for one from an upstream.

    The ORM leaves a None attribute out of the INSERT when the column has a
    default, so a mirrored file's unknown time would otherwise become the sync's.
    """
    if context.get_current_parameters().get("source_url") is not None:
        return None
    return utcnow()


class FileRow(Base):
    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("index_id", "filename", name="uq_files_index_filename"),
        # A release's files: every upload and every render of a project asks (0006).
        Index("ix_files_release_id", "release_id"),
        # The files a cool-down lets out between two ticks of the maturing job (0007).
        Index("ix_files_index_upload_time", "index_id", "upload_time"),
        Index("ix_files_index_seen_at", "index_id", "seen_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"))
    filename: Mapped[str] = mapped_column(String(255))
    packagetype: Mapped[str] = mapped_column(String(20))
    python_version: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    md5: Mapped[str] = mapped_column(String(32))
    blake2_256: Mapped[str] = mapped_column(String(64))
    # Raw METADATA / PKG-INFO bytes, stored as a blob of their own; None for a
    # mirrored file whose upstream offers no metadata file.
    metadata_sha256: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    requires_python: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When the file was uploaded: the server's time for an upload here; for a
    # mirrored or proxied file only what its upstream said (PEP 700), else None.
    upload_time: Mapped[datetime | None] = mapped_column(
        UTCDateTime, nullable=True, default=_upload_time_default
    )
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Upstream pages yank files, not releases (PEP 592 in PEP 691 is per file).
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yanked_reason: Mapped[str] = mapped_column(Text, default="")
    # Whether the blob is stored: a proxy index knows a file's hash from the
    # upstream page before it fetches the bytes on first request.
    cached: Mapped[bool] = mapped_column(Boolean, default=True)
    # Whether the core-metadata blob was stored for this row (uploaded, or fetched
    # and checked): a proxy knows the hash first, and the store is shared by every
    # index, so a blob of that hash existing proves nothing.
    metadata_cached: Mapped[bool] = mapped_column(Boolean, default=True)
    # Where a mirrored or proxied file came from.
    source_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When this server first listed the file (0007): a cool-down's clock for a file
    # whose upstream gave no upload time, which is as new as the day it appeared.
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, default=utcnow)

    release: Mapped[ReleaseRow] = relationship(back_populates="files")


class UpstreamStateRow(Base):
    """Freshness of a mirror or proxy index, published as ``mirror-status.json``."""

    __tablename__ = "upstream_state"

    index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"), primary_key=True)
    # The serial the upstream root listed at the last run, and the one whose
    # projects are all in place here. The second advances last, so a crash
    # mid-sync resumes instead of skipping.
    upstream_serial: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    synced_serial: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    root_etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_success: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # auth.user_names.user_key(name): look-alike names (case, separators, l/i/1,
    # o/0) share a key, so a second "ALICE" cannot stand beside "alice".
    name_key: Mapped[str] = mapped_column(String(100), index=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # A disabled account cannot log in and its tokens stop working.
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Lower-cased; unique so a verified address names one account.
    email: Mapped[str | None] = mapped_column(String(254), unique=True, nullable=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # argon2id PHC string; None for an account made by the CLI without a password.
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # TOTP: the base32 secret, and the last time step accepted, so that no code
    # at or before it is ever accepted again (replay).
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class RecoveryCodeRow(Base):
    """Single-use 2FA recovery codes; only a hash is kept."""

    __tablename__ = "recovery_codes"
    __table_args__ = (Index("ix_recovery_codes_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    code_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebAuthnCredentialRow(Base):
    """A passkey / security key registered as a second factor."""

    __tablename__ = "webauthn_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # base64url of the credential id, as browsers send it back.
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    label: Mapped[str] = mapped_column(String(100), default="")
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SessionRow(Base):
    """A browser session. The cookie carries a secret; only its sha256 is the key."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    # "partial" while the second factor is still owed, "full" once logged in.
    auth_state: Mapped[str] = mapped_column(String(20), default="anonymous")
    csrf_token: Mapped[str] = mapped_column(String(64))
    # Short-lived state between two requests (a WebAuthn challenge, a TOTP secret
    # being set up): kept server-side, never in the cookie.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class EmailTokenRow(Base):
    """A link sent by mail (verify an address, reset a password); single use."""

    __tablename__ = "email_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RateLimitHitRow(Base):
    """One attempt counted against a limit. In the database so every worker shares it."""

    __tablename__ = "rate_limit_hits"
    __table_args__ = (Index("ix_rate_limit_hits_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    key: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEventRow(Base):
    """Who did what, from where, and when: per user and per project."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_user_at", "user_id", "at"),
        Index("ix_audit_events_project_at", "index_id", "project", "at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(60))
    # Who acted (None for anonymous or the server itself) and their name then.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    actor: Mapped[str] = mapped_column(String(200), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    # The account the event is about, and the project, if any.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    index_id: Mapped[int | None] = mapped_column(ForeignKey("indexes.id"), nullable=True)
    project: Mapped[str | None] = mapped_column(String(200), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DownloadCountRow(Base):
    """Downloads of one file on one UTC day; critical projects are computed from these."""

    __tablename__ = "download_counts"

    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class DownloadClientRow(Base):
    """One client's counted download of one file on one UTC day: the key that makes a
    download count once per client, whichever worker process served it.

    ``client`` is a keyed hash of the client's address (web.downloads), never the
    address; rows older than yesterday are swept, and with them the day's key.
    """

    __tablename__ = "download_clients"

    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)


class DownloadKeyRow(Base):
    """The random key of one day's client hashes, shared by every worker process."""

    __tablename__ = "download_keys"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    key: Mapped[str] = mapped_column(String(64))


class CriticalProjectRow(Base):
    """A project that was critical, and the last day it stays so (``critical_keep_days``
    after it was last seen among the busiest), so that others' downloads cannot push it
    out of the 2FA policy at once."""

    __tablename__ = "critical_projects"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    until: Mapped[date] = mapped_column(Date, index=True)


class InvitationRow(Base):
    """An Owner's invitation to a role on a project, until accepted or declined."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    invited_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # "pending", "accepted", "declined" or "revoked".
    status: Mapped[str] = mapped_column(String(20), default="pending")


class IndexPermissionRow(Base):
    """A user's right on a whole index: "read", "upload" (any project) or "create"."""

    __tablename__ = "index_permissions"
    __table_args__ = (
        UniqueConstraint(
            "index_id", "user_id", "permission", name="uq_index_permissions_index_user_perm"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    permission: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PublisherRow(Base):
    """A trusted publisher: which CI identity may upload to a project.

    ``project_id`` is None for a pending publisher, which names the project it
    will create (``pending_name``, normalised) on first use; the user who added
    it becomes the project's Owner.
    """

    __tablename__ = "publishers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id"), nullable=True, index=True
    )
    pending_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # "github", "gitlab" or "oidc" (a generic issuer).
    kind: Mapped[str] = mapped_column(String(20))
    issuer: Mapped[str] = mapped_column(String(500), index=True)
    # The claims a token must carry (repository, workflow, environment, ...).
    claims: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Generic issuers: where their keys are, or the keys themselves (a JWKS).
    jwks_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    static_keys: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OIDCTokenUseRow(Base):
    """A JWT identity already exchanged: claimed before minting, kept past expiry."""

    __tablename__ = "oidc_token_uses"
    __table_args__ = (UniqueConstraint("issuer", "jti", name="uq_oidc_token_uses_issuer_jti"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(500))
    jti: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JWKSCacheRow(Base):
    """An issuer's signing keys and when they were fetched (at most once a minute)."""

    __tablename__ = "jwks_cache"

    issuer: Mapped[str] = mapped_column(String(500), primary_key=True)
    keys: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SwitchRow(Base):
    """An admin switch (read-only, no new users, ...), shared by every worker."""

    __tablename__ = "switches"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_by: Mapped[str] = mapped_column(String(100), default="")
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RoleRow(Base):
    """A user's role on a project: ``Owner`` or ``Maintainer``; either may upload."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("project_id", "user_id", name="uq_roles_project_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[UserRow] = relationship()


class TokenRow(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None for a token minted by trusted publishing: it acts for the publisher.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    publisher_id: Mapped[int | None] = mapped_column(ForeignKey("publishers.id"), nullable=True)
    # sha256 of the whole secret: tokens carry 256 random bits, so a fast hash
    # is enough and lets the lookup be one indexed equality.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, default="")
    index_id: Mapped[int | None] = mapped_column(ForeignKey("indexes.id"), nullable=True)
    # Normalised project names the token may upload to; None means all of the user's.
    projects: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Uploads with a bulk token (granted by an administrator) skip the upload rate
    # limits, to load a whole dependency closure at once.
    bulk: Mapped[bool] = mapped_column(Boolean, default=False)

    user: Mapped[UserRow | None] = relationship()


class JournalRow(Base):
    """One row per change; ``serial`` only goes up and orders everything downstream."""

    __tablename__ = "journal"
    __table_args__ = (
        Index("ix_journal_index_serial", "index_id", "serial"),
        # AUTOINCREMENT makes SQLite never hand out a serial twice.
        {"sqlite_autoincrement": True},
    )

    serial: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"))
    project: Mapped[str | None] = mapped_column(String(200), nullable=True)
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TufMetadataRow(Base):
    """The signed bytes of one TUF role of an index, as every host serves them (0009).

    ``role`` is ``timestamp``, ``snapshot``, ``targets`` or a bin's name; one row per
    role, replaced by each newer version (tilsit.trust.shared).
    """

    __tablename__ = "tuf_metadata"

    index_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class VirtualMemberRow(Base):
    """One member of a virtual index, in the order names are looked up in (0007)."""

    __tablename__ = "virtual_members"
    __table_args__ = (
        UniqueConstraint(
            "virtual_index_id", "member_index_id", name="uq_virtual_members_virtual_member"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    virtual_index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"))
    # Indexed: every journaled change of a member asks which virtual indexes hold it.
    member_index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VirtualRouteRow(Base):
    """An operator's choice of the member that supplies one name in a virtual index."""

    __tablename__ = "virtual_routes"
    __table_args__ = (
        UniqueConstraint("virtual_index_id", "project", name="uq_virtual_routes_virtual_project"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    virtual_index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"))
    project: Mapped[str] = mapped_column(String(200))  # normalised
    member_index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VirtualOwnerRow(Base):
    """Which member supplies a virtual index's project, and by which rule: decided
    when a member changes, read when the page renders."""

    __tablename__ = "virtual_owners"

    # The virtual index's own row for the name.
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    # None: no member may supply it (reserved and not uploaded yet, or a look-alike).
    member_index_id: Mapped[int | None] = mapped_column(ForeignKey("indexes.id"), nullable=True)
    # "first", "route", "reserved", "confusable" or "none".
    rule: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ReservationRow(Base):
    """A name, or a prefix such as ``acme-*``, that only one hosted index may supply."""

    __tablename__ = "reservations"
    __table_args__ = (UniqueConstraint("pattern", "prefix", name="uq_reservations_pattern_prefix"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"), index=True)
    # A normalised name, or a prefix's stem with its separator ("acme-" for "acme-*").
    pattern: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[bool] = mapped_column(Boolean, default=False)
    # The pattern's confusable key: look-alikes of a reserved name are refused too.
    confusable: Mapped[str] = mapped_column(String(200), index=True)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VirtualTickRow(Base):
    """How far a virtual index's cool-down has been let out (the maturing job's mark)."""

    __tablename__ = "virtual_ticks"

    index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"), primary_key=True)
    matured_through: Mapped[datetime] = mapped_column(UTCDateTime)


class PolicyRow(Base):
    """A virtual index's policy: one validated document, replaced whole."""

    __tablename__ = "policies"

    index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(Text, default="")  # as the operator gave it
    version: Mapped[int] = mapped_column(Integer, default=1)
    changed_by: Mapped[str] = mapped_column(String(100), default="")
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyExemptionRow(Base):
    """A project, or one version of it, let through a cool-down until ``expires_at``."""

    __tablename__ = "policy_exemptions"
    __table_args__ = (Index("ix_policy_exemptions_index_project", "index_id", "project"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"))
    project: Mapped[str] = mapped_column(String(200))  # normalised
    version: Mapped[str | None] = mapped_column(String(100), nullable=True)  # None: all
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class VulnRow(Base):
    """One OSV record, as last imported (``tilsit vuln import``)."""

    __tablename__ = "vulns"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # the OSV id
    modified: Mapped[datetime] = mapped_column(UTCDateTime)
    published: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    summary: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # A MAL- record (by id or alias): the affected versions are malware.
    malicious: Mapped[bool] = mapped_column(Boolean, default=False)
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VulnPackageRow(Base):
    """What one OSV record says of one PyPI project: the versions and ranges it covers."""

    __tablename__ = "vuln_packages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vuln_id: Mapped[str] = mapped_column(ForeignKey("vulns.id"), index=True)
    project: Mapped[str] = mapped_column(String(200), index=True)  # normalised
    versions: Mapped[list[str]] = mapped_column(JSON, default=list)
    ranges: Mapped[list[Any]] = mapped_column(JSON, default=list)  # ECOSYSTEM events
    fixed_in: Mapped[list[str]] = mapped_column(JSON, default=list)


class VulnImportRow(Base):
    """One import of OSV data: what was read, and what it changed."""

    __tablename__ = "vuln_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    records: Mapped[int] = mapped_column(Integer)
    changed: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(100), default="")
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReviewRow(Base):
    """A request to let one release into a curated virtual index, and its decision."""

    __tablename__ = "reviews"
    __table_args__ = (
        # One per release: a rejection is remembered and shown to whoever asks again.
        UniqueConstraint(
            "index_id", "project", "version_key", name="uq_reviews_index_project_version"
        ),
        Index("ix_reviews_index_state", "index_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"))
    project: Mapped[str] = mapped_column(String(200))  # normalised
    version: Mapped[str] = mapped_column(String(100))
    version_key: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default="pending")  # approved, rejected
    requested_by: Mapped[str] = mapped_column(String(100), default="")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")


# --- part: stats (0008) --------------------------------------------------------


class DownloadLogRow(Base):
    """An access log that ``tilsit downloads import-log`` has read, and how far.

    A log is known by its device and inode (so a rotated file renamed to ``….1`` is
    still the same log) and by a fingerprint of its first line (so a file truncated in
    place, or an inode reused for another file, starts again from its first byte).
    """

    __tablename__ = "download_logs"
    __table_args__ = (UniqueConstraint("device", "inode", name="uq_download_logs_device_inode"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the first line
    offset: Mapped[int] = mapped_column(BigInteger)  # bytes read: up to a line's end
    path: Mapped[str] = mapped_column(Text)  # as last given, for the operator's eyes
    lines: Mapped[int] = mapped_column(BigInteger, default=0)
    counted: Mapped[int] = mapped_column(BigInteger, default=0)
    unparsed: Mapped[int] = mapped_column(BigInteger, default=0)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- part: search (0008) -------------------------------------------------------


class SearchDocument(TypeDecorator[str]):
    """PostgreSQL: the stored ``tsvector`` of a search document (a generated column, see
    migration 0008); SQLite keeps its full text in FTS5 and leaves this column empty."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import TSVECTOR

            return dialect.type_descriptor(TSVECTOR())
        return dialect.type_descriptor(Text())


class SearchDocRow(Base):
    """One searchable document per (index, project), kept current from the journal by
    :mod:`tilsit.search.follow`. The full-text indexes over it are dialect-specific
    and not models (:mod:`tilsit.search.schema`)."""

    __tablename__ = "search_docs"
    __table_args__ = (
        UniqueConstraint("index_id", "normalized", name="uq_search_docs_index_normalized"),
        # Exact and prefix name matches across every index.
        Index("ix_search_docs_normalized", "normalized"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index_id: Mapped[int] = mapped_column(ForeignKey("indexes.id"))
    normalized: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[str] = mapped_column(Text, default="")
    # The README, cut to tilsit.search.documents.MAX_DESCRIPTION characters.
    description: Mapped[str] = mapped_column(Text, default="")
    uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The journal serial the document was made at.
    serial: Mapped[int] = mapped_column(BigInteger, default=0)
    # Made by the database (PostgreSQL), never written: the ORM leaves it out.
    document: Mapped[str | None] = mapped_column(
        SearchDocument,
        nullable=True,
        server_default=FetchedValue(),
        server_onupdate=FetchedValue(),
        deferred=True,
    )


class SearchStateRow(Base):
    """The journal serial the search index has followed to (one row, id 1)."""

    __tablename__ = "search_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[int] = mapped_column(BigInteger, default=0)
