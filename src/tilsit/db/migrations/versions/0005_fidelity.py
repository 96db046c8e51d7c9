"""fidelity and operators

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

The schema changes for upstream fidelity and operators' work: upload times
that only an upstream may give, one release per version, index lifecycle and
bulk-loading tokens. Each part has its own function so the parts read (and
revert) separately.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

from tilsit.spec.versions import version_key

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# --- part: upstream fidelity ---------------------------------------------------


def _fidelity_upgrade() -> None:
    """``files.upload_time`` may be NULL: a mirrored file's upstream may give no time.

    Mirrors and proxies used to store the sync time, which made every client
    cool-down (``uv --exclude-newer``) treat old files as new. Only an upstream
    may say when a file was uploaded; when it does not, the time is unknown.
    """
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_upload_time(nullable=True)
    else:
        op.alter_column("files", "upload_time", nullable=True)


def _fidelity_downgrade() -> None:
    """``files.upload_time`` NOT NULL again; an unknown time becomes its release's creation."""
    op.execute(
        "UPDATE files SET upload_time = (SELECT releases.created_at FROM releases"
        " WHERE releases.id = files.release_id) WHERE upload_time IS NULL"
    )
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_upload_time(nullable=False)
    else:
        op.alter_column("files", "upload_time", nullable=False)


def _sqlite_upload_time(*, nullable: bool) -> None:
    """Drop or restore NOT NULL on ``files.upload_time`` in SQLite's stored schema.

    SQLite cannot ALTER a column's nullability, and a batch rebuild of ``files``
    fails here: foreign keys are enforced (the pragma cannot change inside the
    migration's transaction), and dropping the old table deletes the rows that
    other tables reference. Removing a NOT NULL changes no stored byte, so the
    table's SQL text is edited in place, the way SQLite's ALTER TABLE page
    describes (writable_schema, then a schema_version bump so every connection
    re-reads it). Restoring it runs after every NULL was filled.
    """
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'files'"
    ).scalar_one()
    column = re.compile(r"(upload_time\s+DATETIME)(\s+NOT NULL)?", re.IGNORECASE)
    found = column.search(sql)
    if found is None:
        raise RuntimeError("files.upload_time not found in the SQLite schema")
    if (found.group(2) is None) == nullable:
        return  # already as wanted
    wanted = found.group(1) + ("" if nullable else " NOT NULL")
    changed = sql[: found.start()] + wanted + sql[found.end() :]
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema=ON")
    try:
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'files'",
            (changed,),
        )
        bind.exec_driver_sql(f"PRAGMA schema_version={int(version) + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema=OFF")


# --- part: one version, one release --------------------------------------------


def _versions_upgrade() -> None:
    """One release per version however spelled: ``releases.version_key``, unique per project.

    Filled from each release's version (:func:`tilsit.spec.versions.version_key`).
    Releases that already collide (``3.0`` and ``3.0.0`` of one project, made
    before this change) must not stop the upgrade and must not vanish: one keeps
    the key (a live one before a deleted one, then the oldest), so new files of
    that version join it; each other keeps its files and spelling under a key no
    version produces (``#<id>#<key>``). Each such release is reported, at WARNING
    in the log and as a ``release.version_collision`` audit event, so the
    operator can delete the one they do not want.
    """
    # Imported here, not at the top, so the parts of this file stay apart.
    import logging
    from datetime import UTC, datetime

    log = logging.getLogger("tilsit.db.migrations")
    # Plain ALTERs, no batch (see 0004): NOT NULL with a placeholder, filled, then indexed.
    op.add_column(
        "releases",
        sa.Column("version_key", sa.String(length=200), nullable=False, server_default=""),
    )
    connection = op.get_bind()
    releases = sa.table(
        "releases",
        sa.column("id", sa.Integer()),
        sa.column("project_id", sa.Integer()),
        sa.column("version", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("deleted_at", sa.DateTime(timezone=True)),
        sa.column("version_key", sa.String()),
    )
    projects = sa.table(
        "projects",
        sa.column("id", sa.Integer()),
        sa.column("index_id", sa.Integer()),
        sa.column("normalized", sa.String()),
    )
    audit = sa.table(
        "audit_events",
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("action", sa.String()),
        sa.column("actor", sa.String()),
        sa.column("ip", sa.String()),
        sa.column("index_id", sa.Integer()),
        sa.column("project", sa.String()),
        sa.column("detail", sa.JSON()),
    )
    now = datetime.now(UTC)
    if connection.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # SQLite keeps naive UTC (models.UTCDateTime)
    holders: dict[tuple[int, str], str] = {}
    rows = connection.execute(
        sa.select(
            releases.c.id,
            releases.c.project_id,
            releases.c.version,
            projects.c.index_id,
            projects.c.normalized,
        )
        .join(projects, releases.c.project_id == projects.c.id)
        .order_by(
            releases.c.project_id,
            releases.c.deleted_at.is_not(None),
            releases.c.created_at,
            releases.c.id,
        )
    ).all()
    for release_id, project_id, version, index_id, project in rows:
        key = version_key(version)
        holder = holders.get((project_id, key))
        if holder is not None:
            log.warning(
                "project %r (index id %d) has releases %r and %r, one version spelled twice:"
                " new files of it join %r; %r keeps its files, delete it if it is not wanted",
                project,
                index_id,
                holder,
                version,
                holder,
                version,
            )
            connection.execute(
                audit.insert().values(
                    at=now,
                    action="release.version_collision",
                    actor="migration 0005",
                    ip="",
                    index_id=index_id,
                    project=project,
                    detail={"version": version, "equals": holder},
                )
            )
            key = f"#{release_id}#{key}"
        else:
            holders[(project_id, key)] = version
        connection.execute(
            releases.update().where(releases.c.id == release_id).values(version_key=key)
        )
    if connection.dialect.name != "sqlite":  # SQLite cannot drop a default in place
        op.alter_column("releases", "version_key", server_default=None)
    op.create_index(
        "ix_releases_project_version_key", "releases", ["project_id", "version_key"], unique=True
    )


def _versions_downgrade() -> None:
    op.drop_index("ix_releases_project_version_key", table_name="releases")
    op.drop_column("releases", "version_key")


# --- part: index lifecycle -------------------------------------------------------


def _lifecycle_upgrade() -> None:
    """Index lifecycle: ``indexes.deleted_at`` marks a soft-deleted index.

    A plain ALTER, no batch: on SQLite a batch rebuilds the table, which the
    foreign keys to ``indexes`` refuse while they are enforced.
    """
    op.add_column("indexes", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def _lifecycle_downgrade() -> None:
    """Index lifecycle: drop ``indexes.deleted_at`` (a deleted index comes back)."""
    op.drop_column("indexes", "deleted_at")


# --- part: limits ------------------------------------------------------------------


def _limits_upgrade() -> None:
    """Bulk tokens: a token whose uploads are exempt from the upload rate limits.

    A plain ALTER (see 0004: a batch would rebuild the table, which SQLite's
    enforced foreign keys refuse); existing tokens are not bulk tokens.
    """
    op.add_column(
        "tokens",
        sa.Column("bulk", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def _limits_downgrade() -> None:
    op.drop_column("tokens", "bulk")


# -----------------------------------------------------------------------------------


def upgrade() -> None:
    _fidelity_upgrade()
    _versions_upgrade()
    _lifecycle_upgrade()
    _limits_upgrade()


def downgrade() -> None:
    _limits_downgrade()
    _lifecycle_downgrade()
    _versions_downgrade()
    _fidelity_downgrade()
