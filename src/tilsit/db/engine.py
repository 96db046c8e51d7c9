"""Engines and sessions, with one write path.

SQLite: WAL, many readers and one writer; write transactions start with
``BEGIN IMMEDIATE`` so two writers queue instead of failing on upgrade.
PostgreSQL: write transactions take one advisory lock, so journal serials are
committed in the order they were allocated and a follower of the journal never
sees serial N+1 before N.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tilsit.db.live import hide_deleted_indexes
from tilsit.db.notify import notify_if_journal_written
from tilsit.operator import ConfigError
from tilsit.store.private import SQLITE_SIDE_FILES, create_private_file

__all__ = ["Database", "DatabaseUnavailable"]


class DatabaseUnavailable(ConfigError):
    """database_url names no database tilsit can use, or its server cannot be reached."""


def make_url_safe(url: str) -> str:
    """``url`` without its password, when it parses at all (for messages)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable>"


# Any constant would do; this one spells "tilsit" in ASCII.
_WRITE_LOCK_KEY = 0x74696C736974
_MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration. Opening a database at this revision needs no Alembic
# import (a second or so on every CLI call); tests/db checks it is the head.
HEAD_REVISION = "0009"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN (the documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("tilsit_write")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if mode else "BEGIN")


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.path = self.sqlite_path(url)
        if url.startswith("sqlite"):
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Owner-only before SQLite writes a byte; its side files take this mode.
                create_private_file(self.path)
            self.engine = create_engine(url, connect_args={"timeout": 30})
            _sqlite_setup(self.engine)
        else:
            try:
                self.engine = create_engine(url, pool_pre_ping=True)
            except (ArgumentError, NoSuchModuleError) as exc:
                raise DatabaseUnavailable(
                    f"database_url {make_url_safe(url)!r} is not a database URL tilsit can use"
                    f" ({exc}); use postgresql+psycopg://user@host/db or leave it empty"
                    " for SQLite in the data directory"
                ) from None
        self.dialect = self.engine.dialect.name
        # The tree this process renders into, named in its journal notifications
        # (tilsit.db.notify); set by a server that follows other hosts.
        self.origin = ""
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # A deleted index is invisible to every query of these sessions (tilsit.db.live).
        event.listen(self._sessions, "do_orm_execute", hide_deleted_indexes)

    @staticmethod
    def sqlite_path(url: str) -> Path | None:
        """The file of a SQLite URL (None for a server database or an in-memory one)."""
        if not url.startswith("sqlite"):
            return None
        path = url.split("///", 1)[-1]
        return Path(path) if path and path != ":memory:" else None

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def secret_files(self) -> list[Path]:
        """The files that hold this database on this host (none for a server database)."""
        if self.path is None:
            return []
        return [self.path, *(self.path.with_name(self.path.name + s) for s in SQLITE_SIDE_FILES)]

    def check_connection(self) -> str | None:
        """The schema revision, or :class:`DatabaseUnavailable` naming the database and why."""
        try:
            return self.revision()
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise DatabaseUnavailable(
                f"cannot open the database {self.display_url}: {reason}; check database_url"
                " (TILSIT_DATABASE_URL) and that the database server is running"
            ) from None

    def revision(self) -> str | None:
        """The schema revision the database is at, or None for an empty database."""
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        if self.revision() == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that holds the single writer lock; commits on success."""
        session = self._sessions()
        try:
            if self.dialect == "sqlite":
                connection = session.connection(execution_options={"tilsit_write": True})
            else:
                connection = session.connection()
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _WRITE_LOCK_KEY}
                )
            del connection
            yield session
            if self.dialect == "postgresql":
                # Other hosts' renderers wake when this commits (tilsit.db.cluster).
                notify_if_journal_written(session, self.origin)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
