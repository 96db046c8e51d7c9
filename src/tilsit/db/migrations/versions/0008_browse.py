"""browsing: full-text search and download statistics

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

What the browsing pages read that the tree does not hold: a search index kept
current from the journal, and download counts imported from nginx's access log.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# --- part: search --------------------------------------------------------------


def _search_upgrade() -> None:
    """The search index (filled by its part)."""


def _search_downgrade() -> None:
    """Drops what _search_upgrade made."""


# --- part: stats ---------------------------------------------------------------


def _stats_upgrade() -> None:
    """Download statistics imported from access logs: which log (its device and inode,
    and a fingerprint of its first line), read up to which offset (tilsit.index.download_log)."""
    op.create_table(
        "download_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device", sa.BigInteger(), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("lines", sa.BigInteger(), nullable=False),
        sa.Column("counted", sa.BigInteger(), nullable=False),
        sa.Column("unparsed", sa.BigInteger(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_download_logs")),
        sa.UniqueConstraint("device", "inode", name="uq_download_logs_device_inode"),
    )


def _stats_downgrade() -> None:
    """Drops what _stats_upgrade made."""
    op.drop_table("download_logs")


def upgrade() -> None:
    _search_upgrade()
    _stats_upgrade()


def downgrade() -> None:
    _stats_downgrade()
    _search_downgrade()
