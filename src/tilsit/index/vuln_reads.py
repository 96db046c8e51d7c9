"""Reading imported OSV data: the records that name a project, and which versions they affect.

One indexed query per project (``vuln_packages`` by project, joined to ``vulns``); the
matching itself is :mod:`tilsit.spec.osv`'s, on the entries as stored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from packaging.version import Version
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.engine import Database
from tilsit.db.models import VulnImportRow, VulnPackageRow, VulnRow
from tilsit.spec.osv import Affected, format_timestamp

__all__ = ["KnownVuln", "any_import", "known_vulns", "legacy_vulns"]


@dataclass(frozen=True, slots=True)
class KnownVuln:
    """An imported record and what it says of one project (its entries for that project)."""

    id: str
    modified_at: str  # RFC 3339, as /osv/v1/querybatch gives it
    aliases: tuple[str, ...]
    summary: str
    details: str
    malicious: bool
    # The record's severity list (CVSS vectors) and its database's word (GHSA's
    # database_specific.severity, e.g. "HIGH"), for policies that filter by severity.
    severity: tuple[dict[str, Any], ...]
    severity_level: str | None
    affected: tuple[Affected, ...]

    def affects(self, version: str) -> bool:
        return any(a.affects(version) for a in self.affected)

    @property
    def fixed_in(self) -> tuple[str, ...]:
        found = {v for a in self.affected for v in a.fixed_in}
        return tuple(sorted(found, key=Version))


def known_vulns(session: Session, project: str) -> list[KnownVuln]:
    """Every stored record that names ``project`` (normalised), by id. One query; the
    records themselves (which may be large) are not read, only the word of their severity."""
    level = VulnRow.record["database_specific"]["severity"].as_string()
    rows = session.execute(
        select(
            VulnRow.id,
            VulnRow.modified,
            VulnRow.aliases,
            VulnRow.summary,
            VulnRow.details,
            VulnRow.malicious,
            VulnRow.severity,
            level,
            VulnPackageRow.versions,
            VulnPackageRow.ranges,
        )
        .join(VulnRow, VulnRow.id == VulnPackageRow.vuln_id)
        .where(VulnPackageRow.project == project)
        .order_by(VulnRow.id, VulnPackageRow.id)
    ).all()
    found: dict[str, KnownVuln] = {}
    for (
        ident,
        modified,
        aliases,
        summary,
        details,
        malicious,
        severity,
        word,
        versions,
        ranges,
    ) in rows:
        entry = Affected.from_stored(project, versions, ranges)
        earlier = found.get(ident)
        if earlier is not None:  # a record with several entries for the project
            found[ident] = replace(earlier, affected=(*earlier.affected, entry))
            continue
        found[ident] = KnownVuln(
            id=ident,
            modified_at=format_timestamp(modified),
            aliases=tuple(aliases),
            summary=summary,
            details=details,
            malicious=malicious,
            severity=tuple(severity),
            severity_level=word,
            affected=(entry,),
        )
    return list(found.values())


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
