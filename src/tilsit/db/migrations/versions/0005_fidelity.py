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

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# --- part: upstream fidelity ---------------------------------------------------


def _fidelity_upgrade() -> None:
    """Upstream fidelity (no change yet)."""


def _fidelity_downgrade() -> None:
    """Upstream fidelity (no change yet)."""


# --- part: one version, one release --------------------------------------------


def _versions_upgrade() -> None:
    """One release per version (no change yet)."""


def _versions_downgrade() -> None:
    """One release per version (no change yet)."""


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
