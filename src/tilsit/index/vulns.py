"""Importing OSV data: ``tilsit vuln import FILE`` (the per-ecosystem ``all.zip``, or one record).

An import is offline and all or nothing. :func:`scan_export` reads the whole file first
(outside the write lock) and checks every record, so a malformed archive or record is one
clear error and nothing changes; :func:`import_osv` then writes, in one transaction, only
what changed: a record is taken when its ``modified`` is newer than the stored one's (the
export is incremental: a re-import of the same file writes nothing but its import row), a
withdrawn record (or one that no longer names a PyPI project) deletes the stored one. The
archive is read member by member with tilsit's own hardened ZIP reader
(:func:`tilsit.dists.zipread.iter_zip`), so 20,000 records are never held at once.

Every live project, in every index, whose name a changed record names (before or after the
change) gets a journal row (``vulns``, with the record ids), so its pages and legacy JSON
re-render; the projects are found by their (index, name) key, never by a scan. The import's
sha256 goes into ``vuln_imports`` and the audit log (``vuln.imported``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tilsit.auth.audit import record_event
from tilsit.db.models import IndexRow, ProjectRow, VulnImportRow, VulnPackageRow, VulnRow
from tilsit.dists.errors import InvalidDistribution
from tilsit.dists.limits import Limits, MiB, format_size
from tilsit.dists.zipread import iter_zip
from tilsit.index import journal
from tilsit.index.errors import IndexError_
from tilsit.spec.osv import Advisory, InvalidRecord, parse_record

__all__ = [
    "MAX_RECORD_SIZE",
    "OSV_LIMITS",
    "ExportEntry",
    "ImportResult",
    "InvalidExport",
    "OsvExport",
    "import_osv",
    "scan_export",
]

# The largest real PyPI records (explicit lists of hundreds of versions) are tens of KiB.
MAX_RECORD_SIZE = 4 * MiB
OSV_LIMITS = Limits(
    max_members=500_000,  # the PyPI export holds some 20,000 to 30,000 records
    max_member_size=MAX_RECORD_SIZE,
    max_metadata_size=MAX_RECORD_SIZE,
)
_BATCH = 500  # records written (and ids looked up) per round trip
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class InvalidExport(IndexError_):
    """An OSV export (or record file) that cannot be imported; nothing was changed."""


@dataclass(frozen=True, slots=True)
class ExportEntry:
    """One record of an export, as the scan found it."""

    member: str  # the ZIP member (or the file's name)
    id: str
    modified: datetime
    # "record": names PyPI projects; "withdrawn"; "elsewhere": names no PyPI project.
    kind: str


@dataclass(frozen=True, slots=True)
class OsvExport:
    """A checked export: every record in it is valid."""

    path: Path
    sha256: str
    is_zip: bool
    entries: tuple[ExportEntry, ...]


@dataclass(slots=True)
class ImportResult:
    source: str
    sha256: str
    records: int  # in the file
    added: int = 0
    updated: int = 0
    removed: int = 0  # withdrawn (or no longer about PyPI) and deleted
    unchanged: int = 0  # not newer than the stored record
    ignored: int = 0  # withdrawn or not about PyPI, and not stored
    projects: int = 0  # journal rows written (one per project per index)
    changed_ids: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.added + self.updated + self.removed


def _fail(path: Path, problem: str) -> InvalidExport:
    return InvalidExport(f"{path}: {problem}; nothing was imported")


def _sha256(f: BinaryIO) -> str:
    f.seek(0)
    digest = hashlib.sha256()
    while chunk := f.read(1024 * 1024):
        digest.update(chunk)
    f.seek(0)
    return digest.hexdigest()


def _is_zip(path: Path, f: BinaryIO) -> bool:
    """By its first bytes, or its name: a .zip that does not start as one is refused by
    the ZIP reader (a prefix is where polyglots hide), not read as a record."""
    head = f.read(4)
    f.seek(0)
    return head in _ZIP_MAGIC or path.suffix.lower() == ".zip"


def _records(
    path: Path, f: BinaryIO, *, is_zip: bool, want: Iterable[str] | None = None
) -> Iterator[tuple[str, Advisory]]:
    """Each record of the open export ``f`` as (member, advisory); ``want``: only these members.

    Raises :class:`InvalidExport` for anything unreadable or invalid.
    """
    wanted = None if want is None else set(want)
    if not is_zip:
        data = f.read(MAX_RECORD_SIZE + 1)
        if len(data) > MAX_RECORD_SIZE:
            raise _fail(path, f"an OSV record may have at most {format_size(MAX_RECORD_SIZE)}")
        if not data.lstrip().startswith(b"{"):
            raise _fail(
                path,
                "this is neither a ZIP archive of OSV records (the export's all.zip) nor an"
                " OSV record (one JSON object)",
            )
        try:
            yield path.name, parse_record(data, path.name)
        except InvalidRecord as exc:
            raise _fail(path, str(exc)) from None
        return
    members = iter_zip(f, OSV_LIMITS, want=lambda name: wanted is None or name in wanted)
    try:
        for member, data in members:
            if not member.endswith(".json"):
                raise _fail(
                    path, f"member {member!r} is not an OSV record (the export's are <ID>.json)"
                )
            yield member, parse_record(data, member)
    except InvalidRecord as exc:
        raise _fail(path, str(exc)) from None
    except InvalidDistribution as exc:
        raise _fail(path, f"not a readable ZIP archive of OSV records: {exc}") from None


def _kind(advisory: Advisory) -> str:
    if advisory.withdrawn is not None:
        return "withdrawn"
    return "record" if advisory.affected else "elsewhere"


def scan_export(path: Path) -> OsvExport:
    """Read and check every record of the export at ``path``; no database needed.

    Raises :class:`InvalidExport` (naming the file, the record and where in it) for a file
    that is missing, unreadable, malformed, or holds one invalid record or one id twice.
    """
    try:
        f = path.open("rb")
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})") from None
    with f:
        if not path.is_file():
            raise _fail(path, "is not a file")
        sha256 = _sha256(f)
        is_zip = _is_zip(path, f)
        entries: list[ExportEntry] = []
        seen: dict[str, str] = {}
        for member, advisory in _records(path, f, is_zip=is_zip):
            if advisory.id in seen:
                raise _fail(path, f"{member} and {seen[advisory.id]} are both record {advisory.id}")
            seen[advisory.id] = member
            entries.append(ExportEntry(member, advisory.id, advisory.modified, _kind(advisory)))
    return OsvExport(path, sha256, is_zip, tuple(entries))


def import_osv(session: Session, source: Path | OsvExport, actor: str) -> ImportResult:
    """Import the export at ``source`` (a path, or what :func:`scan_export` made of it
    outside the write lock) into ``session``, which must be a :meth:`Database.write`.

    Raises :class:`InvalidExport`, before anything is written, for an invalid file or one
    that changed since it was scanned.
    """
    export = source if isinstance(source, OsvExport) else scan_export(source)
    path = export.path
    result = ImportResult(str(path), export.sha256, len(export.entries))
    stored = _stored_modified(session, [e.id for e in export.entries])
    to_write: dict[str, ExportEntry] = {}
    to_remove: list[str] = []
    for entry in export.entries:
        before = stored.get(entry.id)
        if before is not None and entry.modified <= before:
            result.unchanged += 1
        elif entry.kind == "record":
            to_write[entry.member] = entry
        elif before is not None:
            to_remove.append(entry.id)
        else:
            result.ignored += 1
    touched: dict[str, set[str]] = defaultdict(set)  # project -> ids
    if to_write:
        try:
            f = path.open("rb")
        except OSError as exc:
            raise _fail(path, f"cannot be read ({exc.strerror or exc})") from None
        with f:
            if _sha256(f) != export.sha256:
                raise _fail(path, "the file changed while it was imported; run the import again")
            batch: list[Advisory] = []
            for member, advisory in _records(path, f, is_zip=export.is_zip, want=to_write):
                expected = to_write[member]
                if (advisory.id, advisory.modified) != (expected.id, expected.modified):
                    raise _fail(path, "the file changed while it was imported")
                batch.append(advisory)
                if len(batch) >= _BATCH:
                    _write(session, batch, stored, result, touched)
                    batch = []
            _write(session, batch, stored, result, touched)
    for start in range(0, len(to_remove), _BATCH):
        _remove(session, to_remove[start : start + _BATCH], touched)
        result.removed += len(to_remove[start : start + _BATCH])
    result.projects = _journal(session, touched, actor)
    result.changed_ids = sorted({i for ids in touched.values() for i in ids})
    session.add(
        VulnImportRow(
            sha256=export.sha256,
            source=str(path),
            records=result.records,
            changed=result.changed,
            actor=actor,
        )
    )
    record_event(
        session,
        "vuln.imported",
        actor_name=actor,
        detail={
            "sha256": export.sha256,
            "source": str(path),
            "records": result.records,
            "added": result.added,
            "updated": result.updated,
            "removed": result.removed,
        },
    )
    session.flush()
    return result


def _stored_modified(session: Session, ids: Sequence[str]) -> dict[str, datetime]:
    found: dict[str, datetime] = {}
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        found.update(
            session.execute(select(VulnRow.id, VulnRow.modified).where(VulnRow.id.in_(chunk))).all()
        )
    return found


def _old_projects(session: Session, ids: Sequence[str], touched: dict[str, set[str]]) -> None:
    """Note the projects the stored versions of ``ids`` name (a change may drop one)."""
    rows = session.execute(
        select(VulnPackageRow.project, VulnPackageRow.vuln_id).where(
            VulnPackageRow.vuln_id.in_(ids)
        )
    )
    for project, vuln_id in rows:
        touched[project].add(vuln_id)


def _write(
    session: Session,
    batch: list[Advisory],
    stored: dict[str, datetime],
    result: ImportResult,
    touched: dict[str, set[str]],
) -> None:
    if not batch:
        return
    replaced = [a.id for a in batch if a.id in stored]
    if replaced:
        _old_projects(session, replaced, touched)
        session.execute(delete(VulnPackageRow).where(VulnPackageRow.vuln_id.in_(replaced)))
    rows = {row.id: row for row in session.scalars(select(VulnRow).where(VulnRow.id.in_(replaced)))}
    now = datetime.now(UTC)
    for advisory in batch:
        row = rows.get(advisory.id)
        if row is None:
            row = VulnRow(id=advisory.id)
            session.add(row)
            result.added += 1
        else:
            result.updated += 1
        row.modified = advisory.modified
        row.published = advisory.published
        row.aliases = list(advisory.aliases)
        row.summary = advisory.summary
        row.details = advisory.details
        row.severity = [dict(s) for s in advisory.severity]
        row.malicious = advisory.malicious
        row.record = dict(advisory.record)
        row.imported_at = now
        for affected in advisory.affected:
            touched[affected.package].add(advisory.id)
    session.flush()  # the vulns rows before the rows that point to them
    session.add_all(
        VulnPackageRow(
            vuln_id=advisory.id,
            project=affected.package,
            versions=list(affected.versions),
            ranges=affected.ranges_json(),
            fixed_in=list(affected.fixed_in),
        )
        for advisory in batch
        for affected in advisory.affected
    )
    session.flush()


def _remove(session: Session, ids: list[str], touched: dict[str, set[str]]) -> None:
    _old_projects(session, ids, touched)
    session.execute(delete(VulnPackageRow).where(VulnPackageRow.vuln_id.in_(ids)))
    session.execute(delete(VulnRow).where(VulnRow.id.in_(ids)))


def _journal(session: Session, touched: dict[str, set[str]], actor: str) -> int:
    """A ``vulns`` journal row for every live project, in every index, that ``touched``
    names; each found by its (index, name) key. Returns how many were written."""
    if not touched:
        return 0
    names = sorted(touched)
    written = 0
    for index in session.scalars(select(IndexRow).order_by(IndexRow.id)).all():
        for start in range(0, len(names), _BATCH):
            projects = session.scalars(
                select(ProjectRow)
                .where(
                    ProjectRow.index_id == index.id,
                    ProjectRow.normalized.in_(names[start : start + _BATCH]),
                    ProjectRow.deleted_at.is_(None),
                )
                .order_by(ProjectRow.normalized)
            ).all()
            for project in projects:
                journal.record(
                    session,
                    index,
                    "vulns",
                    project=project,
                    actor=actor,
                    detail={"ids": sorted(touched[project.normalized])},
                )
                written += 1
    return written
