"""What several hosts on one PostgreSQL database share besides the rows: wake-ups and locks.

Each host keeps its own tree and follows the one journal (:mod:`tilsit.render.follow`).
A write that appends journal rows sends a notification on :data:`JOURNAL_CHANNEL` in
its transaction; PostgreSQL delivers it only when the transaction commits, so a host
woken by it always finds the rows. A :class:`JournalListener` waits for those
notifications on a connection of its own; a lost notification (a dropped connection,
a host restarting) costs at most one polling interval, since the waiting host looks
at the journal anyway when the wait times out.

:func:`cluster_lock` is a session-level advisory lock on a connection held for the
lock's lifetime: the database releases it when the holder's connection ends, so a
killed host never leaves a lock behind. On SQLite (one host) there is nothing to
share and both are no-ops: the file locks beside the data directory already serve.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from tilsit.db.engine import Database
from tilsit.db.notify import JOURNAL_CHANNEL

__all__ = ["JournalListener", "cluster_lock", "lock_key"]

log = logging.getLogger("tilsit.hosts")


def _driver_url(db: Database) -> str:
    """The database URL as libpq reads it (no SQLAlchemy driver suffix)."""
    url = make_url(db.url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class JournalListener:
    """Waits for the journal notifications of every host (PostgreSQL only).

    ``wait(timeout)`` returns True when a notification from another tree came (one
    whose payload is not ``db.origin``: this tree's own writers render their rows
    themselves, some at the end of a burst), False when the timeout passed (or the
    connection failed: it is made again at the next wait). The caller looks at the
    journal either way, so a lost notification is a delay, not a loss.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._connection: Any = None

    @property
    def active(self) -> bool:
        return self.db.dialect == "postgresql"

    def _connect(self) -> Any:
        import psycopg

        connection = psycopg.connect(_driver_url(self.db), autocommit=True, connect_timeout=10)
        connection.execute(f"LISTEN {JOURNAL_CHANNEL}")
        return connection

    def wait(self, timeout: float) -> bool:
        import psycopg

        if not self.active:
            return False
        deadline = time.monotonic() + timeout
        try:
            if self._connection is None:
                self._connection = self._connect()
            # Several commits may notify at once: one catch-up renders them all, so
            # every notification waiting is taken, and True if one is another tree's.
            woken = False
            while not woken:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                for notice in self._connection.notifies(timeout=left, stop_after=1):
                    woken = woken or notice.payload != self.db.origin
            for notice in self._connection.notifies(timeout=0):
                woken = woken or notice.payload != self.db.origin
            return woken
        except psycopg.Error as exc:
            log.warning("journal notifications lost (%s); polling until they are back", exc)
            self.close()
            return False

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # a broken connection is being dropped anyway
                log.debug("closing the journal listener failed", exc_info=True)
            self._connection = None


# The class id of tilsit's advisory locks (the two-key form keeps them apart from the
# one-key writer lock in tilsit.db.engine); "tils" in ASCII.
_LOCK_CLASS = 0x74696C73


def lock_key(name: str) -> int:
    """A stable 32-bit key for a lock's name (the same on every host)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)


@contextmanager
def cluster_lock(db: Database, name: str, *, wait: bool = False) -> Iterator[bool]:
    """Hold the cluster-wide lock ``name`` while the block runs; yield whether it was had.

    Without ``wait`` it is tried once (False: another host holds it). The lock lives
    on a connection of its own, outside any transaction, and goes with it: a host that
    dies mid-job frees it for the others.
    """
    if db.dialect != "postgresql":
        yield True
        return
    key = {"cls": _LOCK_CLASS, "key": lock_key(name)}
    with db.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        if wait:
            connection.execute(text("SELECT pg_advisory_lock(:cls, :key)"), key)
            held = True
        else:
            held = bool(
                connection.execute(text("SELECT pg_try_advisory_lock(:cls, :key)"), key).scalar()
            )
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:cls, :key)"), key)
