"""The indexes a write's queries need exist, on both backends (migration 0006).

A write must cost what it touches: a lookup that scans a whole table costs what
the index holds. The plan check asks each database how it would find a
release's files (PostgreSQL with sequential scans off, so a small test table
still shows whether an index could serve the query).
"""

from __future__ import annotations

from sqlalchemy import inspect, text

from tilsit.db.models import Base
from tilsit.instance import Instance


def test_every_index_the_models_declare_exists(instance: Instance) -> None:
    with instance.db.engine.connect() as connection:
        inspector = inspect(connection)
        for name, table in Base.metadata.tables.items():
            present = {index["name"] for index in inspector.get_indexes(name)}
            declared = {index.name for index in table.indexes}
            assert declared <= present, (name, declared - present)


def test_a_releases_files_are_found_through_an_index(instance: Instance) -> None:
    query = "SELECT id FROM files WHERE release_id = 1"
    with instance.db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            plan = " ".join(
                str(row) for row in connection.execute(text(f"EXPLAIN QUERY PLAN {query}"))
            )
        else:
            connection.execute(text("SET enable_seqscan = off"))
            plan = " ".join(str(row) for row in connection.execute(text(f"EXPLAIN {query}")))
    assert "ix_files_release_id" in plan, plan
