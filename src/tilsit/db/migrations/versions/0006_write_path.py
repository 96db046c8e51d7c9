"""the write path at size

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

What keeps a write's cost to what it touches, not to what the database holds:
an index for a release's files, and each release's own last serial.
"""

from __future__ import annotations

import sqlalchemy as sa
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


# --- part: release serials --------------------------------------------------------


def _release_serials_upgrade() -> None:
    """``releases.last_serial``: the serial of the change that last touched the release.

    A release's legacy JSON shows it, so an upload of one version rewrites that
    version's JSON only. Releases of hosted indexes start at their project's serial,
    which is what their JSON showed so far; a mirror's or proxy's keep NULL and show
    the project's serial, as before.
    """
    op.add_column("releases", sa.Column("last_serial", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE releases SET last_serial = (SELECT projects.last_serial FROM projects"
        " WHERE projects.id = releases.project_id) WHERE releases.project_id IN"
        " (SELECT projects.id FROM projects JOIN indexes ON indexes.id = projects.index_id"
        " WHERE indexes.kind = 'hosted')"
    )


def _release_serials_downgrade() -> None:
    op.drop_column("releases", "last_serial")


def upgrade() -> None:
    _files_by_release_upgrade()
    _release_serials_upgrade()


def downgrade() -> None:
    _release_serials_downgrade()
    _files_by_release_downgrade()
