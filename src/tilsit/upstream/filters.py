"""What a mirror takes from its upstream: names, versions and files.

Filters live in ``IndexRow.options["filters"]`` as plain JSON (see
:meth:`Filters.to_options`) and apply in three stages, all before anything is
fetched that they exclude:

1. **project names** (the root page): ``block`` entries without a version
   specifier and ``block_regex`` drop a project; when any ``allow`` entry or
   ``allow_regex`` exists, only projects they name are kept. Regexes match the
   whole normalized name (``re.fullmatch``).
2. **versions**: ``prereleases = false`` drops pre- and dev releases;
   ``allow`` entries with specifiers (``requests>=2.30``) keep only versions
   inside one of them (unless an unqualified entry or a regex also names the
   project); ``block`` entries with specifiers drop the versions inside them.
   A version that is not PEP 440 is dropped whenever a specifier applies.
3. **files**: ``platforms`` (fnmatch patterns over wheel platform tags, e.g.
   ``manylinux*_x86_64``; pure wheels and sdists always pass, other binary
   formats never do once platforms are set), ``max_file_size`` in bytes, and
   ``latest`` N: only the N highest versions that still have files.

A file filtered out is left off the page handed to the write path, which
soft-deletes it if an earlier sync had it, so no served page references it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from tilsit.index.upstream import UpstreamFile, UpstreamProject
from tilsit.spec.filenames import classify_mirrored
from tilsit.spec.names import normalize

__all__ = ["FILTER_SETTINGS", "Filtered", "Filters", "InvalidFilter", "parse_size"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


class InvalidFilter(ValueError):
    """A filter setting that cannot be used (bad requirement, regex or number)."""


def parse_size(text: str) -> int:
    """``"50M"``, ``"2GiB"``, ``"1000"`` -> bytes (k/M/G/T are powers of 1000, KiB... of 1024)."""
    match = _SIZE.match(text)
    if match is None:
        raise InvalidFilter(f"invalid size {text!r}: use e.g. 1000, 50M, 2GiB")
    number, unit, binary = match.groups()
    unit = unit.lower()
    if binary.lower().startswith("i"):
        if not unit:
            raise InvalidFilter(f"invalid size {text!r}: 'i' needs a unit (KiB, MiB, ...)")
        factor = 1024 ** ("kmgt".index(unit) + 1)
    else:
        factor = _UNITS[unit]
    return int(float(number) * factor)


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:  # legacy versions sort below every PEP 440 one
        return (0, version)


def _requirement(text: str) -> Requirement:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise InvalidFilter(f"invalid requirement {text!r}: {exc}") from exc
    if req.marker is not None or req.url is not None or req.extras:
        raise InvalidFilter(f"{text!r}: only a name and a version specifier are allowed")
    return req


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise InvalidFilter(f"invalid regular expression {text!r}: {exc}") from exc


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidFilter(f"filters.{key} must be a list of strings")
    return tuple(value)


def _positive(raw: Mapping[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidFilter(f"filters.{key} must be a positive integer")
    return value


@dataclass(frozen=True, slots=True)
class Filtered:
    """One page after filtering, and what was left off (filename, reason)."""

    project: UpstreamProject
    dropped: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Filters:
    allow: tuple[str, ...] = ()
    block: tuple[str, ...] = ()
    allow_regex: tuple[str, ...] = ()
    block_regex: tuple[str, ...] = ()
    prereleases: bool = True
    platforms: tuple[str, ...] = ()
    max_file_size: int | None = None
    latest: int | None = None
    # Parsed forms of the above, made once in __post_init__.
    _allow: tuple[Requirement, ...] = field(init=False, repr=False, compare=False)
    _block: tuple[Requirement, ...] = field(init=False, repr=False, compare=False)
    _allow_re: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _block_re: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", tuple(_requirement(t) for t in self.allow))
        object.__setattr__(self, "_block", tuple(_requirement(t) for t in self.block))
        object.__setattr__(self, "_allow_re", tuple(_regex(t) for t in self.allow_regex))
        object.__setattr__(self, "_block_re", tuple(_regex(t) for t in self.block_regex))
        if self.max_file_size is not None and self.max_file_size < 1:
            raise InvalidFilter("max_file_size must be positive")
        if self.latest is not None and self.latest < 1:
            raise InvalidFilter("latest must be positive")

    @classmethod
    def from_options(cls, raw: Mapping[str, Any] | None) -> Filters:
        """Read ``IndexRow.options["filters"]`` (None or {} means no filtering)."""
        if not raw:
            return cls()
        if not isinstance(raw, Mapping):
            raise InvalidFilter("filters must be an object")
        unknown = set(raw) - set(FILTER_SETTINGS)
        if unknown:
            raise InvalidFilter(f"unknown filter setting(s): {', '.join(sorted(unknown))}")
        prereleases = raw.get("prereleases", True)
        if not isinstance(prereleases, bool):
            raise InvalidFilter("filters.prereleases must be true or false")
        return cls(
            allow=_strings(raw, "allow"),
            block=_strings(raw, "block"),
            allow_regex=_strings(raw, "allow_regex"),
            block_regex=_strings(raw, "block_regex"),
            prereleases=prereleases,
            platforms=_strings(raw, "platforms"),
            max_file_size=_positive(raw, "max_file_size"),
            latest=_positive(raw, "latest"),
        )

    def to_options(self) -> dict[str, Any]:
        """The JSON form stored in ``IndexRow.options["filters"]``; only what is set."""
        doc: dict[str, Any] = {}
        for key in ("allow", "block", "allow_regex", "block_regex", "platforms"):
            value = getattr(self, key)
            if value:
                doc[key] = list(value)
        if not self.prereleases:
            doc["prereleases"] = False
        if self.max_file_size is not None:
            doc["max_file_size"] = self.max_file_size
        if self.latest is not None:
            doc["latest"] = self.latest
        return doc

    def fingerprint(self) -> str:
        """Changes whenever the filters would select differently: a full re-sync is due."""
        text = json.dumps(self.to_options(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def active(self) -> bool:
        return bool(self.to_options())

    # -- stage 1: names -------------------------------------------------------

    def _named(self, rules: Iterable[Requirement], name: str) -> list[Requirement]:
        return [r for r in rules if normalize(r.name) == name]

    def wants_project(self, name: str) -> bool:
        normalized = normalize(name)
        if any(not r.specifier for r in self._named(self._block, normalized)):
            return False
        if any(p.fullmatch(normalized) for p in self._block_re):
            return False
        if self._allow or self._allow_re:
            return bool(self._named(self._allow, normalized)) or any(
                p.fullmatch(normalized) for p in self._allow_re
            )
        return True

    # -- stage 2: versions ----------------------------------------------------

    def wants_version(self, name: str, version: str) -> bool:
        normalized = normalize(name)
        allowed = self._named(self._allow, normalized)
        unrestricted = any(not r.specifier for r in allowed) or any(
            p.fullmatch(normalized) for p in self._allow_re
        )
        allow_specs = [] if unrestricted else [r.specifier for r in allowed if r.specifier]
        block_specs = [r.specifier for r in self._named(self._block, normalized) if r.specifier]
        try:
            parsed = Version(version)
        except InvalidVersion:
            return not (allow_specs or block_specs)
        if not self.prereleases and parsed.is_prerelease:
            return False
        if allow_specs and not any(s.contains(parsed, prereleases=True) for s in allow_specs):
            return False
        return not any(s.contains(parsed, prereleases=True) for s in block_specs)

    # -- stage 3: files -------------------------------------------------------

    def _platform_ok(self, filename: str, packagetype: str) -> bool:
        if not self.platforms or packagetype == "sdist":
            return True
        if packagetype != "bdist_wheel":
            return False
        try:
            tags = parse_wheel_filename(filename)[3]
        except InvalidWheelFilename:
            return False
        return any(
            tag.platform == "any"
            or any(fnmatch.fnmatchcase(tag.platform, p) for p in self.platforms)
            for tag in tags
        )

    def too_big(self, size: int) -> bool:
        return self.max_file_size is not None and size > self.max_file_size

    def select(self, project: UpstreamProject) -> Filtered:
        """The page with every file and version the filters exclude left off."""
        if not self.active:
            return Filtered(project)
        name = normalize(project.name)
        dropped: list[tuple[str, str]] = []
        kept: list[tuple[str, UpstreamFile]] = []
        for f in project.files:
            packagetype, version = classify_mirrored(name, f.filename)
            if not self.wants_version(name, version):
                dropped.append((f.filename, f"version {version} is filtered out"))
            elif not self._platform_ok(f.filename, packagetype):
                dropped.append((f.filename, "platform is filtered out"))
            elif f.size >= 0 and self.too_big(f.size):
                dropped.append((f.filename, f"larger than {self.max_file_size} bytes"))
            else:
                kept.append((version, f))
        versions: Sequence[str] = [v for v in project.versions if self.wants_version(name, v)]
        if self.latest is not None:
            newest = sorted({v for v, _ in kept}, key=_version_key)[-self.latest :]
            for version, f in kept:
                if version not in newest:
                    dropped.append((f.filename, f"not among the latest {self.latest} releases"))
            kept = [(v, f) for v, f in kept if v in newest]
            versions = [v for v in versions if v in newest]
        return Filtered(
            replace(project, files=tuple(f for _, f in kept), versions=tuple(versions)),
            tuple(dropped),
        )


# The settings a filters document may hold: the fields a Filters is made from
# (the CLI's filter options carry the same names).
FILTER_SETTINGS = tuple(f.name for f in fields(Filters) if f.init)
