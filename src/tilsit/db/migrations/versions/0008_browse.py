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


# Both: the deletion neighbourhood of every name (each name and each spelling of it with
# one character left out), for typo matches by exact lookups.
_NAMES_TABLE = (
    "CREATE TABLE search_names (variant VARCHAR(200) NOT NULL, normalized VARCHAR(200) NOT NULL,"
    " PRIMARY KEY (variant, normalized))"
)
# SQLite: an FTS5 table over search_docs (external content, kept by triggers) and the
# deletion neighbourhood of every name (each name and each spelling of it with one
# character left out) for typo matches; its ``document`` column stays empty.
# PostgreSQL: below.
_SQLITE_UP = [
    "CREATE VIRTUAL TABLE search_fts USING fts5(normalized, summary, keywords, description,"
    " content='search_docs', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    # Its rank: bm25 with names above summaries and keywords above READMEs.
    "INSERT INTO search_fts(search_fts, rank) VALUES ('rank', 'bm25(10.0, 4.0, 4.0, 1.0)')",
    "CREATE TRIGGER search_docs_fts_insert AFTER INSERT ON search_docs BEGIN"
    " INSERT INTO search_fts(rowid, normalized, summary, keywords, description)"
    " VALUES (new.id, new.normalized, new.summary, new.keywords, new.description); END",
    "CREATE TRIGGER search_docs_fts_delete AFTER DELETE ON search_docs BEGIN"
    " INSERT INTO search_fts(search_fts, rowid, normalized, summary, keywords, description)"
    " VALUES ('delete', old.id, old.normalized, old.summary, old.keywords, old.description);"
    " END",
    "CREATE TRIGGER search_docs_fts_update AFTER UPDATE ON search_docs BEGIN"
    " INSERT INTO search_fts(search_fts, rowid, normalized, summary, keywords, description)"
    " VALUES ('delete', old.id, old.normalized, old.summary, old.keywords, old.description);"
    " INSERT INTO search_fts(rowid, normalized, summary, keywords, description)"
    " VALUES (new.id, new.normalized, new.summary, new.keywords, new.description); END",
    _NAMES_TABLE + " WITHOUT ROWID",
]
_SQLITE_DOWN = [
    "DROP TABLE IF EXISTS search_names",
    "DROP TRIGGER IF EXISTS search_docs_fts_update",
    "DROP TRIGGER IF EXISTS search_docs_fts_delete",
    "DROP TRIGGER IF EXISTS search_docs_fts_insert",
    "DROP TABLE IF EXISTS search_fts",
]
# PostgreSQL: each document's tsvector, stored (a generated column), so ranking reads
# it instead of parsing every matching README again. Names and summaries weigh most.
_PG_DOCUMENT = (
    "setweight(to_tsvector('english'::regconfig, replace(normalized, '-', ' ')), 'A')"
    " || setweight(to_tsvector('english'::regconfig, summary), 'B')"
    " || setweight(to_tsvector('english'::regconfig, keywords), 'B')"
    " || setweight(to_tsvector('english'::regconfig, description), 'D')"
)
_PG_UP = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    f"ALTER TABLE search_docs ADD COLUMN document tsvector GENERATED ALWAYS AS ({_PG_DOCUMENT})"
    " STORED",
    "CREATE INDEX ix_search_docs_document ON search_docs USING gin (document)",
    # One-letter typos are found in search_names by exact lookups (a trigram scan
    # rechecked 1,400 rows for one typo at 100,000 names: 25 ms); pg_trgm finds the
    # rest (%): GIN finds the candidates sharing trigrams (measured: 10 ms at 100,000
    # names where GiST's nearest-first scan took 25 ms).
    _NAMES_TABLE,
    "CREATE INDEX ix_search_docs_trigram ON search_docs USING gin (normalized gin_trgm_ops)",
    # Name prefixes (LIKE 'x%') under any database collation.
    "CREATE INDEX ix_search_docs_prefix ON search_docs (normalized text_pattern_ops)",
]
_PG_DOWN = [
    "DROP TABLE IF EXISTS search_names",
    "DROP INDEX IF EXISTS ix_search_docs_prefix",
    "DROP INDEX IF EXISTS ix_search_docs_trigram",
    "DROP INDEX IF EXISTS ix_search_docs_document",
]


def _search_upgrade() -> None:
    """The search index: one document per (index, project), the mark of the journal
    it followed to, and each dialect's full-text and fuzzy-name indexes."""
    op.create_table(
        "search_docs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), nullable=False),
        sa.Column("normalized", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("keywords", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["index_id"], ["indexes.id"], name=op.f("fk_search_docs_index_id_indexes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_docs")),
        sa.UniqueConstraint("index_id", "normalized", name="uq_search_docs_index_normalized"),
    )
    op.create_index("ix_search_docs_normalized", "search_docs", ["normalized"])
    op.create_table(
        "search_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_state")),
    )
    # From serial 0: the first catch-up after the upgrade indexes every project the
    # journal names (a journal row exists for every project ever changed).
    op.execute("INSERT INTO search_state (id, serial) VALUES (1, 0)")
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.add_column("search_docs", sa.Column("document", sa.Text(), nullable=True))
    for statement in _SQLITE_UP if dialect == "sqlite" else _PG_UP:
        op.execute(statement)


def _search_downgrade() -> None:
    """Drops what _search_upgrade made (pg_trgm stays: other databases' objects may use it)."""
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE_DOWN if dialect == "sqlite" else _PG_DOWN:
        op.execute(statement)
    op.drop_table("search_state")
    op.drop_index("ix_search_docs_normalized", table_name="search_docs")
    op.drop_table("search_docs")


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
