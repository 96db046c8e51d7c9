"""The rules of a counted download, shared by what tilsit serves (:mod:`tilsit.web.downloads`)
and what nginx served (:mod:`tilsit.index.download_log`): which path is a file, which
row a file's count goes to, the keyed hash of a client under a random key of the day, and
the once per client, file and UTC day note.

See :mod:`tilsit.web.downloads` for the rules themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date, timedelta

from sqlalchemy import case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tilsit.db.models import (
    DownloadClientRow,
    DownloadCountRow,
    DownloadKeyRow,
    FileRow,
    IndexRow,
)

__all__ = [
    "add_count",
    "client_hash",
    "day_key",
    "file_id_of",
    "file_key",
    "first_note",
    "sweep_clients",
]


def file_key(path: str) -> tuple[str, str] | None:
    """(sha256, filename) of a ``/packages/<aa>/<bb>/<rest>/<filename>`` path, or None."""
    parts = path.split("/")
    if len(parts) != 6 or not parts[5] or parts[5].endswith(".metadata"):
        return None
    sha256 = "".join(parts[2:5])
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        return None
    return sha256, parts[5]


def sweep_clients(session: Session, today: date) -> None:
    """Forget the notes (and the keys that hashed them) of days before yesterday:
    yesterday stays, for a worker whose batch straddles midnight."""
    horizon = today - timedelta(days=1)
    session.execute(delete(DownloadClientRow).where(DownloadClientRow.day < horizon))
    session.execute(delete(DownloadKeyRow).where(DownloadKeyRow.day < horizon))


def day_key(session: Session, dialect: str, day: date) -> bytes:
    """The day's HMAC key, made by whichever worker needs it first."""
    values = {"day": day, "key": secrets.token_hex(32)}
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(DownloadKeyRow).values(values).on_conflict_do_nothing())
    stored = session.scalars(select(DownloadKeyRow.key).where(DownloadKeyRow.day == day)).one()
    return bytes.fromhex(stored)


def first_note(session: Session, dialect: str, file_id: int, day: date, client: str) -> bool:
    """Note ``client``'s download of the file that day; True if it is the first."""
    values = {"file_id": file_id, "day": day, "client": client}
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # RETURNING, not rowcount: a row comes back only when this insert made it.
    statement = insert(DownloadClientRow).values(values).on_conflict_do_nothing()
    return session.execute(statement.returning(DownloadClientRow.day)).first() is not None


def file_id_of(session: Session, sha256: str, filename: str) -> int | None:
    # The same bytes under the same name can be in several indexes (a hosted
    # project and a mirror of it): the count goes to one row, preferring a live
    # file of a hosted index, as critical projects are hosted ones.
    return session.scalars(
        select(FileRow.id)
        .join(IndexRow, IndexRow.id == FileRow.index_id)
        .where(FileRow.sha256 == sha256, FileRow.filename == filename)
        .order_by(
            case((FileRow.deleted_at.is_(None), 0), else_=1),
            case((IndexRow.kind == "hosted", 0), else_=1),
            FileRow.id,
        )
        .limit(1)
    ).first()


def add_count(session: Session, dialect: str, file_id: int, day: date, count: int) -> None:
    values = {"file_id": file_id, "day": day, "count": count}
    if dialect == "postgresql":
        pg = postgresql.insert(DownloadCountRow).values(values)
        session.execute(
            pg.on_conflict_do_update(
                index_elements=["file_id", "day"],
                set_={"count": DownloadCountRow.count + pg.excluded["count"]},
            )
        )
        return
    lite = sqlite.insert(DownloadCountRow).values(values)
    session.execute(
        lite.on_conflict_do_update(
            index_elements=["file_id", "day"],
            set_={"count": DownloadCountRow.count + lite.excluded["count"]},
        )
    )


def client_hash(key: bytes, address: str) -> str:
    """The client as stored: an HMAC of its address under the day's key, never the address."""
    return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()
