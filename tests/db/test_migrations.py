from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from tilsit.db import engine as db_engine
from tilsit.db.models import Base
from tilsit.instance import Instance
from tilsit.search.schema import RAW_TABLES


def test_head_revision_constant_is_the_alembic_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(db_engine._MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [db_engine.HEAD_REVISION]


def test_migrated_schema_matches_the_models(instance: Instance) -> None:
    assert instance.db.revision() == db_engine.HEAD_REVISION
    with instance.db.engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        # Exactly the models, plus the tables a dialect's full-text search keeps
        # outside them (FTS5 and its shadow tables): nothing left over by a downgrade.
        raw = RAW_TABLES[connection.dialect.name]
        assert tables - {"alembic_version"} == set(Base.metadata.tables) | raw
        for name, table in Base.metadata.tables.items():
            columns = {c["name"] for c in inspect(connection).get_columns(name)}
            assert columns == {c.name for c in table.columns}, name


def test_migrate_is_idempotent(instance: Instance) -> None:
    instance.db.migrate()
    instance.db.migrate()
    assert instance.db.revision() == db_engine.HEAD_REVISION
