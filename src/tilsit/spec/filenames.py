"""Distribution filenames: wheels (PEP 427/491) and sdists (PEP 625).

An upload's filename is the first thing checked and the one identity that is
never reused in an index, so it is parsed strictly here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

__all__ = [
    "DistFilename",
    "InvalidDistFilename",
    "PackageType",
    "classify_mirrored",
    "parse_dist_filename",
]

PackageType = Literal["bdist_wheel", "sdist"]


class InvalidDistFilename(ValueError):
    """A filename that is not a wheel or a PEP 625 sdist name."""


@dataclass(frozen=True, slots=True)
class DistFilename:
    filename: str
    name: str  # normalised project name, as packaging canonicalises it
    version: Version
    packagetype: PackageType
    tags: frozenset[Tag]

    @property
    def python_version(self) -> str:
        """The ``python_version`` PyPI stores: ``source`` for sdists, the tag otherwise."""
        if self.packagetype == "sdist":
            return "source"
        pythons = sorted({tag.interpreter for tag in self.tags})
        return ".".join(pythons)


def parse_dist_filename(filename: str) -> DistFilename:
    """Parse a wheel or ``.tar.gz`` sdist filename, raising :class:`InvalidDistFilename`."""
    if "/" in filename or "\\" in filename or filename.startswith("."):
        raise InvalidDistFilename(f"invalid filename {filename!r}: it must be a bare file name")
    if filename.endswith(".whl"):
        try:
            name, version, _build, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise InvalidDistFilename(f"invalid wheel filename {filename!r}: {exc}") from exc
        return DistFilename(filename, name, version, "bdist_wheel", frozenset(tags))
    if filename.endswith(".tar.gz"):
        try:
            name, version = parse_sdist_filename(filename)
        except InvalidSdistFilename as exc:
            raise InvalidDistFilename(f"invalid sdist filename {filename!r}: {exc}") from exc
        # PEP 625: the name part is the normalised name with '-' replaced by '_'.
        stem = filename[: -len(".tar.gz")]
        name_part = stem.rpartition("-")[0]
        if name_part != canonicalize_name(name).replace("-", "_"):
            raise InvalidDistFilename(
                f"invalid sdist filename {filename!r}: PEP 625 requires the normalised name"
                f" {canonicalize_name(name).replace('-', '_')!r}"
            )
        return DistFilename(filename, name, version, "sdist", frozenset())
    raise InvalidDistFilename(
        f"invalid filename {filename!r}: only wheels (.whl) and source distributions (.tar.gz)"
        " are accepted"
    )


# Mirrors carry whatever an upstream holds, including formats no longer
# uploadable (eggs, zip sdists): they are classified, not refused.
_LEGACY_TYPES = (
    (".whl", "bdist_wheel"),
    (".tar.gz", "sdist"),
    (".tgz", "sdist"),
    (".tar.bz2", "sdist"),
    (".tar.xz", "sdist"),
    (".tar", "sdist"),
    (".zip", "sdist"),
    (".egg", "bdist_egg"),
    (".exe", "bdist_wininst"),
    (".msi", "bdist_msi"),
    (".rpm", "bdist_rpm"),
    (".dmg", "bdist_dmg"),
)


def classify_mirrored(project: str, filename: str) -> tuple[str, str]:
    """``(packagetype, version)`` of a file on another index, leniently.

    The simple API does not say which version a file belongs to, so it is read
    from the name: exactly for wheels and PEP 625 sdists, and for older names by
    taking what follows the project's name (compared normalised).
    """
    try:
        parsed = parse_dist_filename(filename)
        return parsed.packagetype, str(parsed.version)
    except InvalidDistFilename:
        pass
    lower = filename.lower()
    packagetype, extension = "unknown", ""
    for suffix, kind in _LEGACY_TYPES:
        if lower.endswith(suffix):
            packagetype, extension = kind, suffix
            break
    stem = filename[: len(filename) - len(extension)] if extension else filename
    wanted = canonicalize_name(project)
    for index, char in enumerate(stem):
        if char == "-" and canonicalize_name(stem[:index]) == wanted:
            rest = stem[index + 1 :]
            return packagetype, rest.split("-")[0] if packagetype == "bdist_egg" else rest
    return packagetype, stem.rpartition("-")[2] or stem
