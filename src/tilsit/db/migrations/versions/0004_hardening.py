"""hardening

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

The schema changes of the security hardening: user names unique under case
folding and look-alikes, download counting that a client cannot inflate, and
whether a file's core metadata was stored for its own index.
Each part has its own function so the parts read (and revert) separately.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from tilsit.spec.names import confusable_key

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

log = logging.getLogger("tilsit.db.migrations")


def _user_names_upgrade() -> None:
    """User names compared under case folding and the confusable key.

    Adds ``users.name_key`` (unique) and fills it. Existing accounts whose names
    collide under the key (``alice`` and ``ALICE``) must not stop the upgrade,
    and must not vanish: the oldest (created first, then lowest id) keeps the
    key; each newer one gets a key no name can produce (``~<id>~<key>``), so it
    goes on working under its exact name. Each such pair is reported, at
    WARNING in the log and as a ``user.name_collision`` audit event, so the
    operator can rename or disable the newer account.
    """
    # Plain ALTERs, no batch: on SQLite a batch rebuilds the table, which the
    # foreign keys to users refuse while they are enforced. Added NOT NULL with a
    # placeholder default, filled below, then made unique.
    op.add_column(
        "users",
        sa.Column("name_key", sa.String(length=100), nullable=False, server_default=""),
    )
    connection = op.get_bind()
    users = sa.table(
        "users",
        sa.column("id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("name_key", sa.String()),
    )
    audit = sa.table(
        "audit_events",
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("action", sa.String()),
        sa.column("actor", sa.String()),
        sa.column("ip", sa.String()),
        sa.column("user_id", sa.Integer()),
        sa.column("detail", sa.JSON()),
    )
    now = datetime.now(UTC)
    if connection.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # SQLite keeps naive UTC (models.UTCDateTime)
    holders: dict[str, str] = {}
    rows = connection.execute(
        sa.select(users.c.id, users.c.name).order_by(users.c.created_at, users.c.id)
    ).all()
    for user_id, name in rows:
        key = confusable_key(name)  # what tilsit.auth.user_names.user_key computes
        if key in holders:
            log.warning(
                "user %r (id %d) looks like the older user %r: %r keeps the name key; %r still"
                " logs in under its exact name, but rename or disable it",
                name,
                user_id,
                holders[key],
                holders[key],
                name,
            )
            connection.execute(
                audit.insert().values(
                    at=now,
                    action="user.name_collision",
                    actor="migration 0004",
                    ip="",
                    user_id=user_id,
                    detail={"name": name, "looks_like": holders[key]},
                )
            )
            key = f"~{user_id}~{key}"
        else:
            holders[key] = name
        connection.execute(users.update().where(users.c.id == user_id).values(name_key=key))
    if connection.dialect.name != "sqlite":  # SQLite cannot drop a default in place
        op.alter_column("users", "name_key", server_default=None)
    op.create_index(op.f("ix_users_name_key"), "users", ["name_key"], unique=True)


def _user_names_downgrade() -> None:
    op.drop_index(op.f("ix_users_name_key"), table_name="users")
    op.drop_column("users", "name_key")


def _downloads_upgrade() -> None:
    """Downloads counted once per client, file and day; critical status kept for a period."""
    op.create_table(
        "download_clients",
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_download_clients_file_id_files")
        ),
        sa.PrimaryKeyConstraint("file_id", "day", "client", name=op.f("pk_download_clients")),
    )
    with op.batch_alter_table("download_clients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_download_clients_day"), ["day"], unique=False)
    op.create_table(
        "download_keys",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_download_keys")),
    )
    op.create_table(
        "critical_projects",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_critical_projects_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_critical_projects")),
    )
    with op.batch_alter_table("critical_projects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_critical_projects_until"), ["until"], unique=False)


def _downloads_downgrade() -> None:
    with op.batch_alter_table("critical_projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_critical_projects_until"))
    op.drop_table("critical_projects")
    op.drop_table("download_keys")
    with op.batch_alter_table("download_clients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_download_clients_day"))
    op.drop_table("download_clients")


def _metadata_cached_upgrade() -> None:
    """Whether a file's core-metadata blob was stored for its own index.

    Blobs are shared by every index, so a proxy page naming a core-metadata hash
    that a private upload stored must not get that blob linked without a fetch.
    Existing rows: hosted and mirror indexes store metadata before the row (true);
    a proxy's is marked unfetched, and fetched again (checked) on the next request.
    """
    op.add_column(
        "files",
        sa.Column("metadata_cached", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    files = sa.table(
        "files",
        sa.column("index_id", sa.Integer()),
        sa.column("metadata_cached", sa.Boolean()),
    )
    indexes = sa.table("indexes", sa.column("id", sa.Integer()), sa.column("kind", sa.String()))
    proxies = sa.select(indexes.c.id).where(indexes.c.kind == "proxy")
    op.get_bind().execute(
        files.update().where(files.c.index_id.in_(proxies)).values(metadata_cached=False)
    )


def _metadata_cached_downgrade() -> None:
    op.drop_column("files", "metadata_cached")


def upgrade() -> None:
    _user_names_upgrade()
    _downloads_upgrade()
    _metadata_cached_upgrade()


def downgrade() -> None:
    _metadata_cached_downgrade()
    _downloads_downgrade()
    _user_names_downgrade()
