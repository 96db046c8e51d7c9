"""The search index's tables that are not models: what migration 0008 makes per dialect.

The typo table of name variants on both; SQLite's FTS5 table (with the shadow tables
SQLite keeps for it); PostgreSQL's full-text and trigram indexes are indexes on
``search_docs``. tests/db checks the migrated schema is exactly the
models plus these.
"""

from __future__ import annotations

__all__ = ["RAW_TABLES"]

RAW_TABLES: dict[str, frozenset[str]] = {
    "sqlite": frozenset(
        {
            "search_fts",
            "search_fts_config",
            "search_fts_data",
            "search_fts_docsize",
            "search_fts_idx",
            "search_names",
        }
    ),
    "postgresql": frozenset({"search_names"}),
}
