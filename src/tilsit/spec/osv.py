"""One OSV record (https://ossf.github.io/osv-schema/): validated, reduced to PyPI, and matched.

:func:`parse_record` reads one record as the OSV export gives it (the per-ecosystem
``all.zip`` holds one per member) and returns an :class:`Advisory`, or raises
:class:`InvalidRecord`, whose message names the record and the JSON path of what is wrong
(``PYSEC-2024-1.json: affected[0].ranges[0]: an ECOSYSTEM range needs an 'introduced'
event``). Only ``affected`` entries of the ``PyPI`` ecosystem are kept, their names
normalised (PEP 503); entries of other ecosystems are checked for shape only, as their
versions follow other rules.

Matching follows the schema's evaluation ("IsVulnerable"): a version is affected when an
entry's explicit ``versions`` list names it, or when one of its ``ECOSYSTEM`` ranges
includes it. A range's events are sorted by PEP 440 version (``introduced: "0"`` before
all); walking them, ``introduced`` opens the range, ``fixed`` closes it at that version,
``last_affected`` just after it, and ``limit`` events bound the whole range from above. A
version that is not PEP 440 is never in a range (only an explicit list can name it). ``GIT``
and ``SEMVER`` ranges are checked for shape and not evaluated: PyPI versions are PEP 440.

This module models the standard alone: it imports nothing of tilsit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = [
    "ECOSYSTEM",
    "MAX_ID_LENGTH",
    "Advisory",
    "Affected",
    "InvalidRecord",
    "Range",
    "format_timestamp",
    "parse_record",
    "parse_timestamp",
]

ECOSYSTEM = "PyPI"
# The ``vulns.id`` column; real ids are far shorter (GHSA-xxxx-xxxx-xxxx is 19).
MAX_ID_LENGTH = 100
_MAX_NAME_LENGTH = 200  # the ``vuln_packages.project`` column
# An id becomes a URL path segment (/osv/v1/vulns/<id>) and a CLI argument: letters,
# digits and the separators ids use (PYSEC-2021-1, GHSA-…, MAL-2024-1, RUSTSEC-…).
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*", re.ASCII)
# RFC 3339, as the schema requires: a date, a time, an optional fraction, a zone.
_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
_RANGE_TYPES = ("ECOSYSTEM", "SEMVER", "GIT")
# How tied events sort: a range opened and closed at one version is empty.
_EVENT_ORDER = {kind: position for position, kind in enumerate(_EVENT_KINDS)}
_ZERO = Version("0")


class InvalidRecord(ValueError):
    """An OSV record that does not follow the schema: which record, where in it, and what."""

    def __init__(self, label: str, path: str, problem: str) -> None:
        self.label = label
        self.path = path
        self.problem = problem
        where = f"{label}: {path}: " if path else f"{label}: "
        super().__init__(where + problem)


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime; ValueError if it is not one.

    Fractions past microseconds (OSV allows nanoseconds) are cut, not rounded, so a
    record's ``modified`` read twice compares equal to itself.
    """
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"{text[:60]!r} is not an RFC 3339 timestamp (2024-01-31T12:00:00Z)")
    date, time, fraction, zone = match.groups()
    micro = f".{(fraction or '0')[:6]:0<6}"
    zone = "+00:00" if zone in ("Z", "z") else zone
    return datetime.fromisoformat(f"{date}T{time}{micro}{zone}").astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as OSV writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


@dataclass(frozen=True, slots=True)
class Range:
    """One ``ECOSYSTEM`` range: its events as given, and sorted for evaluation."""

    events: tuple[tuple[str, str], ...]  # (kind, version) in the record's order
    _sorted: tuple[tuple[str, Version | None], ...] = field(repr=False, compare=False)
    _limits: tuple[Version | None, ...] = field(repr=False, compare=False)

    @classmethod
    def of(cls, events: Iterable[tuple[str, str]]) -> Range:
        """A range from ``(kind, version)`` events, which must be valid (see parse_record)."""
        given = tuple(events)
        steps: list[tuple[str, Version | None]] = []
        limits: list[Version | None] = []
        for kind, text in given:
            if kind == "limit":
                limits.append(None if text == "*" else Version(text))
            elif kind == "introduced" and text == "0":
                steps.append((kind, None))  # "0": before every version
            else:
                steps.append((kind, Version(text)))

        # "0" first, then by version; tied events in _EVENT_ORDER (opened before closed).
        steps.sort(key=lambda step: (step[1] is not None, step[1] or _ZERO, _EVENT_ORDER[step[0]]))
        return cls(given, tuple(steps), tuple(limits))

    def includes(self, version: Version) -> bool:
        """Whether ``version`` lies in this range (the schema's IncludedInRanges for one)."""
        if self._limits and not any(limit is None or version < limit for limit in self._limits):
            return False
        vulnerable = False
        for kind, bound in self._sorted:
            if kind == "introduced" and (bound is None or version >= bound):
                vulnerable = True
            elif bound is not None and (
                (kind == "fixed" and version >= bound)
                or (kind == "last_affected" and version > bound)
            ):
                vulnerable = False
        return vulnerable

    def as_json(self) -> list[dict[str, str]]:
        """The events as the record gives them (what ``vuln_packages.ranges`` stores)."""
        return [{kind: version} for kind, version in self.events]


@dataclass(frozen=True, slots=True)
class Affected:
    """What one record says of one PyPI project: explicit versions and ECOSYSTEM ranges."""

    package: str  # normalised
    versions: tuple[str, ...] = ()
    ranges: tuple[Range, ...] = ()

    @property
    def fixed_in(self) -> tuple[str, ...]:
        """The ``fixed`` events of the ranges, in version order, each once."""
        found = {version for r in self.ranges for kind, version in r.events if kind == "fixed"}
        return tuple(sorted(found, key=Version))

    def affects(self, version: str) -> bool:
        """Whether ``version`` is affected: the explicit list first, then the ranges."""
        try:
            parsed: Version | None = Version(version)
        except InvalidVersion:
            parsed = None
        for listed in self.versions:
            if listed == version:
                return True
            if parsed is not None and _same_version(listed, parsed):
                return True
        if parsed is None:
            return False  # a version that is not PEP 440 is in no range
        return any(r.includes(parsed) for r in self.ranges)

    @classmethod
    def from_stored(
        cls, package: str, versions: Sequence[str], ranges: Sequence[Sequence[Mapping[str, str]]]
    ) -> Affected:
        """The entry as ``vuln_packages`` stores it (checked when it was imported)."""
        return cls(
            package,
            tuple(versions),
            tuple(Range.of(next(iter(event.items())) for event in r) for r in ranges),
        )

    def ranges_json(self) -> list[list[dict[str, str]]]:
        return [r.as_json() for r in self.ranges]


def _same_version(listed: str, version: Version) -> bool:
    try:
        return Version(listed) == version
    except InvalidVersion:
        return False


@dataclass(frozen=True, slots=True)
class Advisory:
    """One OSV record, checked, with its PyPI entries."""

    id: str
    modified: datetime
    published: datetime | None
    withdrawn: datetime | None
    aliases: tuple[str, ...]
    summary: str
    details: str
    # The record's ``severity`` list (CVSS vectors) and, where the database gives one,
    # its own word (GHSA's ``database_specific.severity``: LOW … CRITICAL), for policies.
    severity: tuple[Mapping[str, Any], ...]
    severity_level: str | None
    affected: tuple[Affected, ...]
    record: Mapping[str, Any] = field(repr=False)

    @property
    def malicious(self) -> bool:
        """A malicious-package record (OSSF's ``MAL-`` ids), by its id or an alias."""
        return any(name.startswith("MAL-") for name in (self.id, *self.aliases))

    @property
    def packages(self) -> frozenset[str]:
        """The normalised names of the PyPI projects the record names."""
        return frozenset(a.package for a in self.affected)

    def affects(self, package: str, version: str) -> bool:
        """Whether the record says ``package`` (any spelling) at ``version`` is affected."""
        name = canonicalize_name(package)
        return any(a.affects(version) for a in self.affected if a.package == name)

    def fixed_in(self, package: str) -> tuple[str, ...]:
        name = canonicalize_name(package)
        found = {v for a in self.affected if a.package == name for v in a.fixed_in}
        return tuple(sorted(found, key=Version))


class _Reader:
    """Checks one record's fields, naming the record and the path of what is wrong."""

    def __init__(self, label: str) -> None:
        self.label = label

    def fail(self, path: str, problem: str) -> InvalidRecord:
        return InvalidRecord(self.label, path, problem)

    def obj(self, value: object, path: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be an object, not {_kind(value)}")
        return value

    def items(self, value: object, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list, not {_kind(value)}")
        return value

    def text(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"must be a string, not {_kind(value)}")
        return value

    def texts(self, record: Mapping[str, Any], key: str, path: str = "") -> tuple[str, ...]:
        where = _join(path, key)
        return tuple(
            self.text(item, f"{where}[{i}]")
            for i, item in enumerate(self.items(record.get(key, []), where))
        )

    def optional_text(self, record: Mapping[str, Any], key: str) -> str:
        return "" if record.get(key) is None else self.text(record[key], key)

    def timestamp(self, record: Mapping[str, Any], key: str, *, required: bool) -> datetime | None:
        if key not in record:
            if required:
                raise self.fail(key, "is required")
            return None
        try:
            return parse_timestamp(self.text(record[key], key))
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_record(data: bytes | Mapping[str, Any], label: str) -> Advisory:
    """Read and check one OSV record (bytes of JSON, or the decoded object).

    ``label`` names the record in errors (the file or member it came from).
    Raises :class:`InvalidRecord`.
    """
    reader = _Reader(label)
    if isinstance(data, bytes | bytearray):
        try:
            decoded = json.loads(data, parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise reader.fail("", f"not a JSON document ({exc})") from None
        except RecursionError:
            raise reader.fail("", "not a JSON document (nested too deeply)") from None
    else:
        decoded = data
    record = reader.obj(decoded, "")
    ident = reader.text(record.get("id"), "id") if "id" in record else None
    if ident is None:
        raise reader.fail("id", "is required")
    if len(ident) > MAX_ID_LENGTH or not _ID.fullmatch(ident):
        raise reader.fail(
            "id",
            f"{ident[:120]!r} is not an OSV id (letters, digits and . _ : -, at most"
            f" {MAX_ID_LENGTH} characters, like PYSEC-2024-1)",
        )
    reader.label = label if label.removesuffix(".json") == ident else f"{label} ({ident})"
    modified = reader.timestamp(record, "modified", required=True)
    assert modified is not None
    published = reader.timestamp(record, "published", required=False)
    withdrawn = reader.timestamp(record, "withdrawn", required=False)
    aliases = reader.texts(record, "aliases")
    reader.texts(record, "related")
    reader.texts(record, "upstream")
    summary = reader.optional_text(record, "summary")
    details = reader.optional_text(record, "details")
    severity = _severity(reader, record.get("severity", []), "severity")
    level = None
    specific = record.get("database_specific")
    if specific is not None:
        specific = reader.obj(specific, "database_specific")
        if specific.get("severity") is not None:
            level = reader.text(specific["severity"], "database_specific.severity")
    affected: list[Affected] = []
    for i, entry in enumerate(reader.items(record.get("affected", []), "affected")):
        found = _affected(reader, entry, f"affected[{i}]")
        if found is not None:
            affected.append(found)
    return Advisory(
        id=ident,
        modified=modified,
        published=published,
        withdrawn=withdrawn,
        aliases=aliases,
        summary=summary,
        details=details,
        severity=severity,
        severity_level=level,
        affected=tuple(affected),
        record=record,
    )


def _severity(reader: _Reader, value: object, path: str) -> tuple[Mapping[str, Any], ...]:
    found = []
    for i, item in enumerate(reader.items(value, path)):
        entry = reader.obj(item, f"{path}[{i}]")
        reader.text(entry.get("type"), f"{path}[{i}].type")
        reader.text(entry.get("score"), f"{path}[{i}].score")
        found.append(entry)
    return tuple(found)


def _affected(reader: _Reader, value: object, path: str) -> Affected | None:
    entry = reader.obj(value, path)
    package = entry.get("package")
    _severity(reader, entry.get("severity", []), f"{path}.severity")
    ranges = reader.items(entry.get("ranges", []), f"{path}.ranges")
    versions = reader.texts(entry, "versions", path)
    if package is None:
        return None  # a GIT-only entry of another ecosystem
    package = reader.obj(package, f"{path}.package")
    ecosystem = reader.text(package.get("ecosystem"), f"{path}.package.ecosystem")
    name = reader.text(package.get("name"), f"{path}.package.name")
    pypi = ecosystem == ECOSYSTEM
    kept: list[Range] = []
    for j, item in enumerate(ranges):
        checked = _range(reader, item, f"{path}.ranges[{j}]", pypi=pypi)
        if checked is not None:
            kept.append(checked)
    if not pypi:
        return None
    try:
        normalized = canonicalize_name(name, validate=True)
    except InvalidName:
        raise reader.fail(
            f"{path}.package.name", f"{name[:120]!r} is not a PyPI project name"
        ) from None
    if len(normalized) > _MAX_NAME_LENGTH:
        raise reader.fail(f"{path}.package.name", f"is longer than {_MAX_NAME_LENGTH} characters")
    return Affected(normalized, versions, tuple(kept))


def _range(reader: _Reader, value: object, path: str, *, pypi: bool) -> Range | None:
    """Check one range; return it when it is a PyPI ECOSYSTEM range (the ones evaluated)."""
    entry = reader.obj(value, path)
    kind = reader.text(entry.get("type"), f"{path}.type")
    if kind not in _RANGE_TYPES:
        raise reader.fail(f"{path}.type", f"{kind[:40]!r} is not one of {', '.join(_RANGE_TYPES)}")
    if kind == "GIT":
        reader.text(entry.get("repo"), f"{path}.repo")
    raw = reader.items(entry.get("events"), f"{path}.events")
    if not raw:
        raise reader.fail(f"{path}.events", "must hold at least one event")
    events: list[tuple[str, str]] = []
    for k, item in enumerate(raw):
        where = f"{path}.events[{k}]"
        event = reader.obj(item, where)
        if len(event) != 1 or next(iter(event)) not in _EVENT_KINDS:
            raise reader.fail(
                where, f"must have exactly one of {', '.join(_EVENT_KINDS)}, not {sorted(event)}"
            )
        ((event_kind, version),) = event.items()
        events.append((event_kind, reader.text(version, f"{where}.{event_kind}")))
    if not any(event_kind == "introduced" for event_kind, _ in events):
        raise reader.fail(path, f"an {kind} range needs an 'introduced' event")
    if kind != "ECOSYSTEM" or not pypi:
        return None
    for k, (event_kind, version) in enumerate(events):
        if (event_kind, version) in (("introduced", "0"), ("limit", "*")):
            continue
        try:
            Version(version)
        except InvalidVersion:
            raise reader.fail(
                f"{path}.events[{k}].{event_kind}", f"{version[:60]!r} is not a PEP 440 version"
            ) from None
    return Range.of(events)
