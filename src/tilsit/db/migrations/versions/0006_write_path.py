"""the write path at size

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Indexes that keep a write's queries proportional to what it touches, not to
what the database holds.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


# --- part: file lookups by release ------------------------------------------------


def _files_by_release_upgrade() -> None:
    """``files.release_id`` indexed.

    Every upload asks which files its release already holds, and every render of
    a project reads its releases' files; without the index each of those read the
    whole files table (at 100,000 projects, most of an upload's time).
    """
    op.create_index("ix_files_release_id", "files", ["release_id"])


def _files_by_release_downgrade() -> None:
    op.drop_index("ix_files_release_id", table_name="files")


def upgrade() -> None:
    _files_by_release_upgrade()


def downgrade() -> None:
    _files_by_release_downgrade()
