"""upstream indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upstream_state",
        sa.Column("index_id", sa.Integer(), nullable=False),
        sa.Column("upstream_serial", sa.BigInteger(), nullable=True),
        sa.Column("synced_serial", sa.BigInteger(), nullable=True),
        sa.Column("root_etag", sa.Text(), nullable=True),
        sa.Column("last_success", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["index_id"], ["indexes.id"], name=op.f("fk_upstream_state_index_id_indexes")
        ),
        sa.PrimaryKeyConstraint("index_id", name=op.f("pk_upstream_state")),
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        # Existing rows are hosted files: not yanked by themselves, and stored.
        batch_op.add_column(
            sa.Column("yanked", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("yanked_reason", sa.Text(), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("cached", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(sa.Column("source_url", sa.Text(), nullable=True))
        batch_op.alter_column("metadata_sha256", existing_type=sa.VARCHAR(length=64), nullable=True)

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_serial", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("upstream_etag", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("fetched_at")
        batch_op.drop_column("upstream_etag")
        batch_op.drop_column("upstream_serial")

    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.alter_column(
            "metadata_sha256", existing_type=sa.VARCHAR(length=64), nullable=False
        )
        batch_op.drop_column("source_url")
        batch_op.drop_column("cached")
        batch_op.drop_column("yanked_reason")
        batch_op.drop_column("yanked")

    op.drop_table("upstream_state")
