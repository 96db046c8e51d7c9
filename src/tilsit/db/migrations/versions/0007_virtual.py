"""virtual indexes and their policies

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

The fourth index kind: a virtual index serves its members' projects, each name from
one member, with policies (cool-down, vulnerability data, allow and deny rules, a
review queue) applied when its pages render.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# --- part: virtual -------------------------------------------------------------


def _virtual_upgrade() -> None:
    """Virtual indexes: their members in order, routes, each name's owner, reserved
    names and prefixes, and the cool-down's mark."""
    op.create_table(
        "virtual_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("virtual_index_id", sa.Integer(), nullable=False),
        sa.Column("member_index_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_index_id"],
            ["indexes.id"],
            name=op.f("fk_virtual_members_member_index_id_indexes"),
        ),
        sa.ForeignKeyConstraint(
            ["virtual_index_id"],
            ["indexes.id"],
            name=op.f("fk_virtual_members_virtual_index_id_indexes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_virtual_members")),
        sa.UniqueConstraint(
            "virtual_index_id", "member_index_id", name="uq_virtual_members_virtual_member"
        ),
    )
    with op.batch_alter_table("virtual_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_virtual_members_member_index_id"), ["member_index_id"], unique=False
        )
    op.create_table(
        "virtual_routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("virtual_index_id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("member_index_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_index_id"],
            ["indexes.id"],
            name=op.f("fk_virtual_routes_member_index_id_indexes"),
        ),
        sa.ForeignKeyConstraint(
            ["virtual_index_id"],
            ["indexes.id"],
            name=op.f("fk_virtual_routes_virtual_index_id_indexes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_virtual_routes")),
        sa.UniqueConstraint(
            "virtual_index_id", "project", name="uq_virtual_routes_virtual_project"
        ),
    )
    op.create_table(
        "virtual_owners",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("member_index_id", sa.Integer(), nullable=True),
        sa.Column("rule", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_index_id"],
            ["indexes.id"],
            name=op.f("fk_virtual_owners_member_index_id_indexes"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_virtual_owners_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_virtual_owners")),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), nullable=False),
        sa.Column("pattern", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.Boolean(), nullable=False),
        sa.Column("confusable", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["index_id"], ["indexes.id"], name=op.f("fk_reservations_index_id_indexes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
        sa.UniqueConstraint("pattern", "prefix", name="uq_reservations_pattern_prefix"),
    )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reservations_confusable"), ["confusable"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_reservations_index_id"), ["index_id"], unique=False)
    op.create_table(
        "virtual_ticks",
        sa.Column("index_id", sa.Integer(), nullable=False),
        sa.Column("matured_through", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["index_id"], ["indexes.id"], name=op.f("fk_virtual_ticks_index_id_indexes")
        ),
        sa.PrimaryKeyConstraint("index_id", name=op.f("pk_virtual_ticks")),
    )


def _virtual_downgrade() -> None:
    op.drop_table("virtual_ticks")
    op.drop_table("reservations")
    op.drop_table("virtual_owners")
    op.drop_table("virtual_routes")
    op.drop_table("virtual_members")


# --- part: policies ------------------------------------------------------------


def _policies_upgrade() -> None:
    """A virtual index's policy document and its exemptions."""
    op.create_table(
        "policies",
        sa.Column("index_id", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["index_id"], ["indexes.id"], name=op.f("fk_policies_index_id_indexes")
        ),
        sa.PrimaryKeyConstraint("index_id", name=op.f("pk_policies")),
    )
    op.create_table(
        "policy_exemptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["index_id"], ["indexes.id"], name=op.f("fk_policy_exemptions_index_id_indexes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_exemptions")),
    )
    with op.batch_alter_table("policy_exemptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_policy_exemptions_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(
            "ix_policy_exemptions_index_project", ["index_id", "project"], unique=False
        )


def _policies_downgrade() -> None:
    op.drop_table("policy_exemptions")
    op.drop_table("policies")


# --- part: vulns ---------------------------------------------------------------


def _vulns_upgrade() -> None:
    """Imported OSV records, the PyPI projects they name, and each import."""
    op.create_table(
        "vulns",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=True),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("severity", sa.JSON(), nullable=False),
        sa.Column("malicious", sa.Boolean(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vulns")),
    )
    op.create_table(
        "vuln_packages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vuln_id", sa.String(length=100), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("ranges", sa.JSON(), nullable=False),
        sa.Column("fixed_in", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vuln_id"], ["vulns.id"], name=op.f("fk_vuln_packages_vuln_id_vulns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vuln_packages")),
    )
    with op.batch_alter_table("vuln_packages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vuln_packages_project"), ["project"], unique=False)
        batch_op.create_index(batch_op.f("ix_vuln_packages_vuln_id"), ["vuln_id"], unique=False)
    op.create_table(
        "vuln_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vuln_imports")),
    )


def _vulns_downgrade() -> None:
    op.drop_table("vuln_imports")
    op.drop_table("vuln_packages")
    op.drop_table("vulns")


# --- part: reviews -------------------------------------------------------------


def _reviews_upgrade() -> None:
    """The review queue of curated virtual indexes."""
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("version_key", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["index_id"], ["indexes.id"], name=op.f("fk_reviews_index_id_indexes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint(
            "index_id", "project", "version_key", name="uq_reviews_index_project_version"
        ),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index("ix_reviews_index_state", ["index_id", "state"], unique=False)


def _reviews_downgrade() -> None:
    op.drop_table("reviews")


# --- part: upstream status and first sight ----------------------------------------


def _status_upgrade() -> None:
    """``projects.status`` (PEP 792, as the upstream says; policies deny by it) and
    ``files.seen_at``: when a file was first listed here, the cool-down's clock for
    files whose upstream gave no upload time. Files already listed are as old as
    their release here, not as new as the upgrade, so an upgrade hides nothing.
    The two indexes serve the maturing job's range queries.
    """
    op.add_column(
        "projects",
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
    )
    op.add_column("files", sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE files SET seen_at = (SELECT releases.created_at FROM releases"
        " WHERE releases.id = files.release_id) WHERE files.upload_time IS NULL"
    )
    op.create_index("ix_files_index_upload_time", "files", ["index_id", "upload_time"])
    op.create_index("ix_files_index_seen_at", "files", ["index_id", "seen_at"])


def _status_downgrade() -> None:
    op.drop_index("ix_files_index_seen_at", table_name="files")
    op.drop_index("ix_files_index_upload_time", table_name="files")
    op.drop_column("files", "seen_at")
    op.drop_column("projects", "status")


def upgrade() -> None:
    _virtual_upgrade()
    _policies_upgrade()
    _vulns_upgrade()
    _reviews_upgrade()
    _status_upgrade()


def downgrade() -> None:
    _status_downgrade()
    _reviews_downgrade()
    _vulns_downgrade()
    _policies_downgrade()
    _virtual_downgrade()
