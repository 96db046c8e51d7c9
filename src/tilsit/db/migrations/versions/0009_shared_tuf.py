"""several hosts: the signed TUF metadata every host serves

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

Hosts sharing one PostgreSQL database sign an index one at a time and serve the same
signed bytes (tilsit.trust.shared): the current timestamp, snapshot and targets of each
index and the newest version of each of its bins, one row per (index, role), replaced
as new versions are signed. Bounded: one row per role, not per version.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tuf_metadata",
        sa.Column("index_name", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tuf_metadata")
