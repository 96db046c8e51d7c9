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
    """Index lifecycle (no change yet)."""


def _lifecycle_downgrade() -> None:
    """Index lifecycle (no change yet)."""


# --- part: limits ------------------------------------------------------------------


def _limits_upgrade() -> None:
    """Bulk tokens: a token whose uploads are exempt from the upload rate limits.

    A plain ALTER (see 0004: a batch would rebuild the table, which SQLite's
    enforced foreign keys refuse); existing tokens are not bulk tokens.
    """
    op.add_column(
        "tokens",
        sa.Column("bulk", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def _limits_downgrade() -> None:
    op.drop_column("tokens", "bulk")


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
