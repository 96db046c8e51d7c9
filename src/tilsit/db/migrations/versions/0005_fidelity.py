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

import sqlalchemy as sa  # noqa: F401  (used by the parts below)
from alembic import op

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
    """One release per version (no change yet)."""


def _versions_downgrade() -> None:
    """One release per version (no change yet)."""


# --- part: index lifecycle -------------------------------------------------------


def _lifecycle_upgrade() -> None:
    """Index lifecycle (no change yet)."""


def _lifecycle_downgrade() -> None:
    """Index lifecycle (no change yet)."""


# --- part: limits ------------------------------------------------------------------


def _limits_upgrade() -> None:
    """Limits users hit (no change yet)."""


def _limits_downgrade() -> None:
    """Limits users hit (no change yet)."""


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
