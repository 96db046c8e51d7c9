"""A virtual index's policy document: parsed once from TOML, validated, stored as JSON.

The document (docs/policies.md)::

    cooldown = { duration = "7 days" }             # or "P7D"; absent: no cool-down
    vulnerabilities = { action = "hide", ids = ["GHSA-", "PYSEC-"], min_severity = "HIGH" }
    allow = { names = [], requirements = ["django>=4.2"], licenses = ["MIT", "Apache-2.0"] }
    deny = { names = ["evil-*"], requirements = ["urllib3<2"], statuses = ["archived"],
             prereleases = false, yanked = true, kinds = ["bdist_egg"] }
    curated = { enabled = false }

Every key is optional; an empty document hides nothing. Values are normalised
as they are read (names by PEP 503, requirements and licence expressions to
their canonical spelling), so two documents that mean the same compare equal and
:meth:`PolicyDoc.to_json` is canonical. Every problem names the source and the
key path (``all.toml: deny.requirements[1]: ...``), and all of them are reported
at once. Pure: no database, no I/O.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, TypeVar, cast

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tilsit.config.durations import InvalidDuration, format_duration, parse_duration
from tilsit.index import errors
from tilsit.spec.filenames import PACKAGE_TYPES
from tilsit.spec.names import is_valid_name

__all__ = [
    "SEVERITIES",
    "STATUSES",
    "VULN_ACTIONS",
    "Allow",
    "Cooldown",
    "Curated",
    "Deny",
    "InvalidPolicy",
    "NamePattern",
    "PolicyDoc",
    "RequirementRule",
    "Vulnerabilities",
    "parse_policy",
]

VULN_ACTIONS = ("off", "warn", "hide")
# PEP 792 project statuses a policy may deny ("active" is the absence of one).
STATUSES = ("archived", "deprecated", "quarantined")
# The qualitative levels of OSV records (GitHub's database_specific.severity and
# the CVSS bands), lowest first; "MEDIUM" is read as "MODERATE".
SEVERITIES = ("LOW", "MODERATE", "HIGH", "CRITICAL")

VulnAction = Literal["off", "warn", "hide"]


class InvalidPolicy(errors.IndexError_):
    """A policy document with problems; ``problems`` holds each, as
    ``<source>: <key path>: <what is wrong>``, and the message joins them."""

    status = 400

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class NamePattern:
    """A normalised project name, or a prefix (``acme-*``: every name that starts ``acme-``)."""

    text: str  # as stored: "django" or "acme-*"

    @property
    def prefix(self) -> str | None:
        return self.text[:-1] if self.text.endswith("*") else None

    def matches(self, project: str) -> bool:
        """Whether normalised ``project`` is this name or starts with this prefix."""
        prefix = self.prefix
        return project.startswith(prefix) if prefix is not None else project == self.text


@dataclass(frozen=True, slots=True)
class RequirementRule:
    """A requirement without extras, markers or URL: a project and the versions named."""

    text: str  # canonical: normalised name and the specifiers in packaging's order
    name: str
    specifier: SpecifierSet


@dataclass(frozen=True, slots=True)
class Cooldown:
    duration: timedelta


@dataclass(frozen=True, slots=True)
class Vulnerabilities:
    action: VulnAction = "off"
    ids: tuple[str, ...] = ()  # id or alias prefixes ("GHSA-"); empty: every record
    min_severity: str | None = None  # one of SEVERITIES; records stating none always count


@dataclass(frozen=True, slots=True)
class Allow:
    names: tuple[NamePattern, ...] = ()  # non-empty: only these projects
    requirements: tuple[RequirementRule, ...] = ()  # a named project: only these versions
    licenses: tuple[str, ...] = ()  # non-empty: only releases whose expression they satisfy


@dataclass(frozen=True, slots=True)
class Deny:
    names: tuple[NamePattern, ...] = ()
    requirements: tuple[RequirementRule, ...] = ()
    statuses: tuple[str, ...] = ()
    prereleases: bool = False
    yanked: bool = False
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Curated:
    enabled: bool = False


@dataclass(frozen=True, slots=True)
class PolicyDoc:
    """One virtual index's policy; the default hides nothing."""

    cooldown: Cooldown | None = None
    vulnerabilities: Vulnerabilities = field(default_factory=Vulnerabilities)
    allow: Allow = field(default_factory=Allow)
    deny: Deny = field(default_factory=Deny)
    curated: Curated = field(default_factory=Curated)

    def to_json(self) -> dict[str, Any]:
        """The canonical document (what ``PolicyRow.document`` holds): every section,
        every key with its value, except those whose value is unset (no cool-down, no
        minimum severity), which TOML cannot write."""
        document: dict[str, Any] = {}
        if self.cooldown is not None:
            document["cooldown"] = {"duration": format_duration(self.cooldown.duration)}
        vulns: dict[str, Any] = {
            "action": self.vulnerabilities.action,
            "ids": list(self.vulnerabilities.ids),
        }
        if self.vulnerabilities.min_severity is not None:
            vulns["min_severity"] = self.vulnerabilities.min_severity
        document["vulnerabilities"] = vulns
        document["allow"] = {
            "names": [n.text for n in self.allow.names],
            "requirements": [r.text for r in self.allow.requirements],
            "licenses": list(self.allow.licenses),
        }
        document["deny"] = {
            "names": [n.text for n in self.deny.names],
            "requirements": [r.text for r in self.deny.requirements],
            "statuses": list(self.deny.statuses),
            "prereleases": self.deny.prereleases,
            "yanked": self.deny.yanked,
            "kinds": list(self.deny.kinds),
        }
        document["curated"] = {"enabled": self.curated.enabled}
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any], source: str = "stored policy") -> PolicyDoc:
        """The policy a stored document holds, validated as a file would be."""
        return _parse_document(document, source)

    def to_toml(self) -> str:
        """The canonical document as TOML: what ``tilsit policy show`` prints, and a file
        that ``tilsit policy set NAME FILE`` takes back unchanged."""
        lines: list[str] = []
        for section, values in self.to_json().items():
            if lines:
                lines.append("")
            lines.append(f"[{section}]")
            for key, value in values.items():
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # A JSON string without \u escapes of non-ASCII is a TOML basic string.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def parse_policy(text: str, source: str) -> PolicyDoc:
    """The policy in TOML ``text``; ``source`` (a file name) starts every error message.

    Raises :class:`InvalidPolicy` listing every problem found.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidPolicy([f"{source}: not valid TOML: {exc}"]) from None
    return _parse_document(document, source)


# -- reading ------------------------------------------------------------------------------

T = TypeVar("T")


class _Reader:
    """Gathers every problem of one document, each named by its source and key path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{self.source}: {path}: {message}")

    def table(
        self, document: Mapping[str, Any], key: str, known: tuple[str, ...], example: str
    ) -> Mapping[str, Any]:
        """``document[key]`` as a table (empty when absent), its unknown keys reported."""
        value = document.get(key, {})
        if not isinstance(value, Mapping):
            self.problem(key, f"expected a table such as {key} = {example}, not {_shown(value)}")
            return {}
        self.unknown_keys(value, known, key)
        return value

    def unknown_keys(self, table: Mapping[str, Any], known: tuple[str, ...], path: str) -> None:
        for key in table:
            if key not in known:
                where = f"{path}.{key}" if path else str(key)
                self.problem(where, f"unknown key; known keys: {', '.join(known)}")

    def boolean(self, table: Mapping[str, Any], key: str, path: str) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}", f"expected true or false, not {_shown(value)}")
            return False
        return value

    def items(
        self,
        table: Mapping[str, Any],
        key: str,
        path: str,
        convert: Callable[[str], T],
    ) -> tuple[T, ...]:
        """``table[key]`` as a list of strings, each converted; a ValueError from
        ``convert`` is a problem at that item's path. Duplicates are dropped."""
        value = table.get(key, [])
        where = f"{path}.{key}"
        if not isinstance(value, list):
            self.problem(where, f"expected a list of strings, not {_shown(value)}")
            return ()
        found: list[T] = []
        for number, item in enumerate(value):
            if not isinstance(item, str):
                self.problem(f"{where}[{number}]", f"expected a string, not {_shown(item)}")
                continue
            try:
                converted = convert(item)
            except ValueError as exc:
                self.problem(f"{where}[{number}]", str(exc))
                continue
            if converted not in found:
                found.append(converted)
        return tuple(found)


def _shown(value: object) -> str:
    """A value as the message names it: its TOML spelling where it has one."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool | list):
        try:
            return _toml_value(value)
        except TypeError:
            pass
    if isinstance(value, Mapping):
        return "a table"
    return repr(value)


_SECTIONS = ("cooldown", "vulnerabilities", "allow", "deny", "curated")


def _parse_document(document: Mapping[str, Any], source: str) -> PolicyDoc:
    reader = _Reader(source)
    reader.unknown_keys(document, _SECTIONS, "")
    cooldown = _cooldown(reader, document)
    vulnerabilities = _vulnerabilities(reader, document)

    allow_table = reader.table(
        document, "allow", ("names", "requirements", "licenses"), '{ names = ["django"] }'
    )
    allow = Allow(
        names=reader.items(allow_table, "names", "allow", _name_pattern),
        requirements=reader.items(allow_table, "requirements", "allow", _requirement),
        licenses=reader.items(allow_table, "licenses", "allow", _licence),
    )
    deny_table = reader.table(
        document,
        "deny",
        ("names", "requirements", "statuses", "prereleases", "yanked", "kinds"),
        '{ requirements = ["urllib3<2"] }',
    )
    deny = Deny(
        names=reader.items(deny_table, "names", "deny", _name_pattern),
        requirements=reader.items(deny_table, "requirements", "deny", _requirement),
        statuses=reader.items(deny_table, "statuses", "deny", _status),
        prereleases=reader.boolean(deny_table, "prereleases", "deny"),
        yanked=reader.boolean(deny_table, "yanked", "deny"),
        kinds=reader.items(deny_table, "kinds", "deny", _kind),
    )
    curated_table = reader.table(document, "curated", ("enabled",), "{ enabled = true }")
    curated = Curated(enabled=reader.boolean(curated_table, "enabled", "curated"))
    if reader.problems:
        raise InvalidPolicy(reader.problems)
    return PolicyDoc(
        cooldown=cooldown, vulnerabilities=vulnerabilities, allow=allow, deny=deny, curated=curated
    )


def _cooldown(reader: _Reader, document: Mapping[str, Any]) -> Cooldown | None:
    if "cooldown" not in document:
        return None
    table = reader.table(document, "cooldown", ("duration",), '{ duration = "7 days" }')
    if not table:
        if isinstance(document["cooldown"], Mapping):
            reader.problem("cooldown.duration", 'missing: give one, such as duration = "7 days"')
        return None
    value = table.get("duration")
    if value is None:
        reader.problem("cooldown.duration", 'missing: give one, such as duration = "7 days"')
        return None
    if not isinstance(value, str):
        reader.problem(
            "cooldown.duration", f'expected a string such as "7 days", not {_shown(value)}'
        )
        return None
    try:
        return Cooldown(parse_duration(value))
    except InvalidDuration as exc:
        reader.problem("cooldown.duration", str(exc))
        return None


def _vulnerabilities(reader: _Reader, document: Mapping[str, Any]) -> Vulnerabilities:
    table = reader.table(
        document, "vulnerabilities", ("action", "ids", "min_severity"), '{ action = "hide" }'
    )
    action = table.get("action", "off")
    if action not in VULN_ACTIONS:
        reader.problem(
            "vulnerabilities.action",
            f"{_shown(action)} is not an action: use {', '.join(map(repr, VULN_ACTIONS))}",
        )
        action = "off"
    ids = reader.items(table, "ids", "vulnerabilities", _id_prefix)
    severity = table.get("min_severity")
    if severity is not None:
        level = severity.upper() if isinstance(severity, str) else None
        level = "MODERATE" if level == "MEDIUM" else level
        if level not in SEVERITIES:
            reader.problem(
                "vulnerabilities.min_severity",
                f"{_shown(severity)} is not a severity: use {', '.join(map(repr, SEVERITIES))}",
            )
            level = None
        severity = level
    return Vulnerabilities(action=cast(VulnAction, action), ids=ids, min_severity=severity)


# -- one item each: raise ValueError with the message that follows the key path --------------


def _name_pattern(text: str) -> NamePattern:
    stem = text[:-2] if text[-2:] in ("-*", "_*", ".*") else text
    if "*" in stem:
        raise ValueError(
            f"{text!r} is not a name or prefix: a prefix ends in '-*' ('acme-*'), and '*'"
            " appears nowhere else"
        )
    if not is_valid_name(stem):
        raise ValueError(
            f"{text!r} is not a project name: use ASCII letters, digits, '.', '-' and '_',"
            " or a prefix such as 'acme-*'"
        )
    normalized = canonicalize_name(stem)
    return NamePattern(f"{normalized}-*" if stem != text else normalized)


def _requirement(text: str) -> RequirementRule:
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]
        raise ValueError(
            f"{text!r} is not a requirement: {reason} (write a name and specifiers,"
            " such as 'urllib3<2' or 'django>=4.2,<5')"
        ) from None
    if requirement.url or requirement.extras or requirement.marker is not None:
        raise ValueError(
            f"{text!r} has extras, a marker or a URL, which a policy does not use:"
            " write only a name and specifiers, such as 'urllib3<2'"
        )
    name = canonicalize_name(requirement.name)
    return RequirementRule(f"{name}{requirement.specifier}", name, requirement.specifier)


def _licence(text: str) -> str:
    try:
        canonical = canonicalize_license_expression(text)
    except InvalidLicenseExpression as exc:
        raise ValueError(
            f"{text!r} is not an SPDX licence: {exc} (such as 'MIT' or 'Apache-2.0')"
        ) from None
    words = canonical.replace("(", " ").replace(")", " ").split()
    if any(word in ("AND", "OR") for word in words):
        raise ValueError(
            f"{text!r} is an expression: list each allowed licence on its own"
            f" ({', '.join(repr(w) for w in words if w not in ('AND', 'OR'))})"
        )
    return canonical


def _status(text: str) -> str:
    if text not in STATUSES:
        raise ValueError(f"{text!r} is not a project status: use {', '.join(map(repr, STATUSES))}")
    return text


def _kind(text: str) -> str:
    if text not in PACKAGE_TYPES:
        raise ValueError(f"{text!r} is not a file kind: use {', '.join(map(repr, PACKAGE_TYPES))}")
    return text


def _id_prefix(text: str) -> str:
    if not text.strip() or text != text.strip():
        raise ValueError(f"{text!r} is not an id prefix: give one such as 'GHSA-' or 'PYSEC-'")
    return text
