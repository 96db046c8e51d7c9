"""Reading imported OSV data: the records that name a project, and which versions they affect.

One indexed query per project (``vuln_packages`` by project, joined to ``vulns``); the
matching itself is :mod:`tilsit.spec.osv`'s, on the entries as stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import Version
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.engine import Database
from tilsit.db.models import VulnImportRow, VulnPackageRow, VulnRow
from tilsit.spec.osv import Affected

__all__ = ["KnownVuln", "any_import", "known_vulns", "legacy_vulns"]


@dataclass(frozen=True, slots=True)
class KnownVuln:
    """An imported record and what it says of one project (its entries for that project)."""

    id: str
    modified_at: str  # as the record gives it
    aliases: tuple[str, ...]
    summary: str
    details: str
    malicious: bool
    affected: tuple[Affected, ...]
    severity: str | None = None  # the database's own word (GHSA: LOW ... CRITICAL), if any

    def affects(self, version: str) -> bool:
        return any(a.affects(version) for a in self.affected)

    @property
    def fixed_in(self) -> tuple[str, ...]:
        found = {v for a in self.affected for v in a.fixed_in}
        return tuple(sorted(found, key=Version))


def known_vulns(session: Session, project: str) -> list[KnownVuln]:
    """Every stored record that names ``project`` (normalised), by id."""
    rows = session.execute(
        select(
            VulnRow.id,
            VulnRow.aliases,
            VulnRow.summary,
            VulnRow.details,
            VulnRow.malicious,
            VulnRow.record,
            VulnPackageRow.versions,
            VulnPackageRow.ranges,
        )
        .join(VulnRow, VulnRow.id == VulnPackageRow.vuln_id)
        .where(VulnPackageRow.project == project)
        .order_by(VulnRow.id, VulnPackageRow.id)
    ).all()
    found: dict[str, KnownVuln] = {}
    for ident, aliases, summary, details, malicious, record, versions, ranges in rows:
        entry = Affected.from_stored(project, versions, ranges)
        earlier = found.get(ident)
        if earlier is not None:
            found[ident] = KnownVuln(
                earlier.id,
                earlier.modified_at,
                earlier.aliases,
                earlier.summary,
                earlier.details,
                earlier.malicious,
                (*earlier.affected, entry),
                earlier.severity,
            )
            continue
        found[ident] = KnownVuln(
            ident,
            str(record.get("modified", "")),
            tuple(aliases),
            summary,
            details,
            malicious,
            (entry,),
            _level(record),
        )
    return list(found.values())


def _level(record: object) -> str | None:
    specific = record.get("database_specific") if isinstance(record, dict) else None
    level = specific.get("severity") if isinstance(specific, dict) else None
    return level if isinstance(level, str) else None


# Databases (by URL) known to hold an import: vuln_imports rows are never deleted, so
# once seen, the answer stays yes and the check costs nothing.
_IMPORTED: set[str] = set()


def any_import(session: Session, url: str) -> bool:
    """Whether any OSV data was ever imported into the database at ``url``."""
    if url in _IMPORTED:
        return True
    if session.scalar(select(VulnImportRow.id).limit(1)) is None:
        return False
    _IMPORTED.add(url)
    return True


def legacy_vulns(db: Database, project: str) -> list[KnownVuln] | None:
    """What a render of ``project``'s legacy JSON lists under ``vulnerabilities``; None
    before any import, when the key must be left out (an empty list says "none known")."""
    with db.read() as session:
        if not any_import(session, db.url):
            return None
        return known_vulns(session, project)
