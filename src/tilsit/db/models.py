"""SQLAlchemy models.

Rows are never deleted by the read/write paths: a delete sets ``deleted_at``,
so a filename once used in an index stays taken (``files`` is unique on
``(index_id, filename)``) and every blob a row names stays reachable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
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

    index: Mapped[IndexRow] = relationship()
    releases: Mapped[list[ReleaseRow]] = relationship(back_populates="project")


class ReleaseRow(Base):
    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("project_id", "version", name="uq_releases_project_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    version: Mapped[str] = mapped_column(String(100))  # normalised, str(Version)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yanked_reason: Mapped[str] = mapped_column(Text, default="")
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    project: Mapped[ProjectRow] = relationship(back_populates="releases")
    files: Mapped[list[FileRow]] = relationship(back_populates="release")


class FileRow(Base):
    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("index_id", "filename", name="uq_files_index_filename"),)

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
    upload_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Upstream pages yank files, not releases (PEP 592 in PEP 691 is per file).
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yanked_reason: Mapped[str] = mapped_column(Text, default="")
    # Whether the blob is stored: a proxy index knows a file's hash from the
    # upstream page before it fetches the bytes on first request.
    cached: Mapped[bool] = mapped_column(Boolean, default=True)
    # Where a mirrored or proxied file came from.
    source_url: Mapped[str | None] = mapped_column(Text, nullable=True)

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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)


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
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
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

    user: Mapped[UserRow] = relationship()


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
