"""browsing: full-text search and download statistics

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

What the browsing pages read that the tree does not hold: a search index kept
current from the journal, and download counts imported from nginx's access log.
"""

from __future__ import annotations

from alembic import op  # noqa: F401  (each part below uses it)

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
    """Download statistics imported from access logs (filled by its part)."""


def _stats_downgrade() -> None:
    """Drops what _stats_upgrade made."""


def upgrade() -> None:
    _search_upgrade()
    _stats_upgrade()


def downgrade() -> None:
    _stats_downgrade()
    _search_downgrade()
