"""Keep the search documents current from the journal.

:class:`SearchFollower` reads the journal rows past its mark (``search_state``),
rebuilds the document of each (index, project) they name, and writes the documents
and the new mark in one transaction, so a crash loses neither or both. It runs after
every :meth:`tilsit.render.follow.Renderer.catch_up` (every write calls one, and
``tilsit serve`` runs one at start and in its background loop), after the render:
a virtual index's document depends on the page the renderer just published.

A pass costs what the rows name: one document per changed project (its latest
release's metadata blob read once), never a pass over an index. Only a row that
changes every page of a virtual index (a new policy) rebuilds each of its documents,
as it re-renders each of its pages; a deleted index loses its documents at once.

Documents are built in a read transaction, outside the writer lock, and written
under it only if the mark has not moved meanwhile (another process followed the same
rows): then the pass starts again from the new mark.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from tilsit.db.engine import Database
from tilsit.db.live import with_deleted
from tilsit.db.models import IndexRow, JournalRow, ProjectRow, SearchDocRow, SearchStateRow
from tilsit.index.owners import member_indexes
from tilsit.render.follow import WHOLE_INDEX_ACTIONS
from tilsit.render.legacy import ReadBlob
from tilsit.render.snapshot import ProjectSnapshots
from tilsit.search.documents import Document, leaf_document, stored_document, virtual_document
from tilsit.search.names import deletions
from tilsit.store.tree import Tree

__all__ = ["BATCH_ROWS", "SearchFollower"]

log = logging.getLogger("tilsit.search")

# Journal rows read per transaction: a mirror's first sync journals a row per
# project, and one pass over all of them would hold the writer lock for minutes.
BATCH_ROWS = 2000
# Documents written per transaction by a rebuild.
_REBUILD_BATCH = 500


@dataclass(frozen=True, slots=True)
class _Change:
    """What one pass writes: documents to store, (index, name) pairs whose document goes,
    and indexes whose every document goes (deleted indexes)."""

    store: list[Document]
    drop: list[tuple[int, str]]
    drop_indexes: list[int]


class SearchFollower:
    def __init__(
        self,
        db: Database,
        tree: Tree,
        read_blob: ReadBlob,
        snapshots: Callable[[], ProjectSnapshots],
    ) -> None:
        self.db = db
        self.tree = tree
        self.read_blob = read_blob
        # The renderer's snapshots (it may replace them): large projects' releases
        # are read once for both.
        self.snapshots = snapshots
        self._lock = threading.Lock()
        self.documents_built = 0  # for tests and benchmarks

    def mark(self) -> int:
        with self.db.read() as session:
            return _mark(session)

    def catch_up(self) -> int:
        """Follow the journal to its end; return the serial reached."""
        with self._lock:
            while True:
                with self.db.read() as session:
                    start = _mark(session)
                    rows = session.execute(
                        select(
                            JournalRow.serial,
                            JournalRow.index_id,
                            JournalRow.project,
                            JournalRow.action,
                            JournalRow.detail,
                        )
                        .where(JournalRow.serial > start)
                        .order_by(JournalRow.serial)
                        .limit(BATCH_ROWS)
                    ).all()
                    if not rows:
                        return start
                    change = self._build(session, _touched(session, [tuple(r) for r in rows]))
                end = int(rows[-1][0])
                with self.db.write() as session:
                    if _mark(session) != start:
                        continue  # another process followed these rows meanwhile
                    self._write(session, change, end)
                    _set_mark(session, end)

    def rebuild(self) -> int:
        """Every document again from the database; return the serial it is current to."""
        with self._lock:
            with self.db.read() as session:
                end = int(session.scalar(select(func.max(JournalRow.serial))) or 0)
                indexes = _in_member_order(session, list(session.scalars(select(IndexRow))))
            with self.db.write() as session:
                session.execute(delete(SearchDocRow))
                session.execute(text("DELETE FROM search_names"))
                _set_mark(session, end)
            for index in indexes:
                with self.db.read() as session:
                    names = list(
                        session.scalars(
                            select(ProjectRow.normalized)
                            .where(ProjectRow.index_id == index.id, ProjectRow.deleted_at.is_(None))
                            .order_by(ProjectRow.normalized)
                        )
                    )
                for start in range(0, len(names), _REBUILD_BATCH):
                    group = names[start : start + _REBUILD_BATCH]
                    with self.db.read() as session:
                        live = session.get_one(IndexRow, index.id)
                        change = self._build(session, [(live, name) for name in group])
                    with self.db.write() as session:
                        self._write(session, change, end)
            return end

    def _build(self, session: Session, touched: Iterable[tuple[IndexRow, str | None]]) -> _Change:
        store: list[Document] = []
        drop: list[tuple[int, str]] = []
        drop_indexes: list[int] = []
        built: dict[tuple[int, str], Document | None] = {}
        for index, name in touched:
            if name is None:
                drop_indexes.append(index.id)
                continue
            if index.kind == "virtual":

                def member_document(member_id: int, name: str) -> Document | None:
                    # The member's document as this pass builds it, when it changed too.
                    if (member_id, name) in built:
                        return built[(member_id, name)]
                    return stored_document(session, member_id, name)

                document = virtual_document(session, self.tree, index, name, member_document)
            else:
                document = leaf_document(session, self.snapshots(), self.read_blob, index, name)
            built[(index.id, name)] = document
            self.documents_built += 1
            if document is None:
                drop.append((index.id, name))
            else:
                store.append(document)
        return _Change(store, drop, drop_indexes)

    def _write(self, session: Session, change: _Change, serial: int) -> None:
        if change.drop_indexes:
            session.execute(
                delete(SearchDocRow).where(SearchDocRow.index_id.in_(change.drop_indexes))
            )
        for index_id, name in change.drop:
            session.execute(
                delete(SearchDocRow).where(
                    SearchDocRow.index_id == index_id, SearchDocRow.normalized == name
                )
            )
        for document in change.store:
            row = session.scalar(
                select(SearchDocRow).where(
                    SearchDocRow.index_id == document.index_id,
                    SearchDocRow.normalized == document.normalized,
                )
            )
            if row is None:
                session.add(
                    SearchDocRow(
                        index_id=document.index_id,
                        normalized=document.normalized,
                        serial=serial,
                        **document.fields(),
                    )
                )
            else:
                for key, value in document.fields().items():
                    setattr(row, key, value)
                row.serial = serial
        session.flush()
        if change.store:
            # Never removed with a document: a variant of a name no document has
            # matches nothing when joined, and the table stays bounded by names seen.
            pairs = {
                (variant, document.normalized)
                for document in change.store
                for variant in deletions(document.normalized)
            }
            session.execute(
                text(
                    "INSERT INTO search_names (variant, normalized) VALUES (:variant, :normalized)"
                    " ON CONFLICT DO NOTHING"
                ),
                [{"variant": v, "normalized": n} for v, n in sorted(pairs)],
            )


def _mark(session: Session) -> int:
    return int(session.scalar(select(SearchStateRow.serial).where(SearchStateRow.id == 1)) or 0)


def _set_mark(session: Session, serial: int) -> None:
    state = session.get(SearchStateRow, 1)
    if state is None:
        session.add(SearchStateRow(id=1, serial=serial))
    else:
        state.serial = serial


def _touched(
    session: Session, rows: Iterable[tuple[int, int, str | None, str, object]]
) -> list[tuple[IndexRow, str | None]]:
    """(index, name) pairs the rows change, in the order of their last row, so that a
    member's document is built before the virtual indexes' copies of it; (index, None)
    for a deleted index."""
    last: dict[tuple[int, str | None], int] = {}
    for serial, index_id, project, action, detail in rows:
        if project is not None:
            last[(index_id, project)] = serial
        elif action in WHOLE_INDEX_ACTIONS and not (
            isinstance(detail, dict) and "project" in detail
        ):
            for name in session.scalars(
                select(ProjectRow.normalized).where(ProjectRow.index_id == index_id)
            ):
                last[(index_id, name)] = serial
        else:
            last.setdefault((index_id, None), serial)
    indexes = {
        row.id: row
        for row in session.scalars(
            select(IndexRow)
            .where(IndexRow.id.in_({i for i, _ in last}))
            .execution_options(**with_deleted())
        )
    }
    out: list[tuple[IndexRow, str | None]] = []
    gone: set[int] = set()
    for (index_id, touched), _serial in sorted(last.items(), key=lambda item: item[1]):
        index = indexes.get(index_id)
        if index is None or index_id in gone:
            continue
        if index.deleted_at is not None:
            gone.add(index_id)
            out.append((index, None))
        elif touched is not None:
            out.append((index, touched))
    return out


def _in_member_order(session: Session, indexes: list[IndexRow]) -> list[IndexRow]:
    """Live indexes with every virtual index after its members (they copy their documents)."""
    out: list[IndexRow] = []
    seen: set[int] = set()

    def visit(index: IndexRow) -> None:
        if index.id in seen:
            return
        seen.add(index.id)
        if index.kind == "virtual":
            for member in member_indexes(session, index):
                visit(member)
        out.append(index)

    for index in sorted(indexes, key=lambda i: i.name):
        if index.deleted_at is None:
            visit(index)
    return out
