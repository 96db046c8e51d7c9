"""Distribution filenames: wheels (PEP 427/491) and sdists (PEP 625).

An upload's filename is the first thing checked and the one identity that is
never reused in an index, so it is parsed strictly here. A file another index
lists (a mirror's or proxy's upstream) may use an older format, but its name
still follows :func:`check_filename` and :func:`validate_filename`: it becomes a
path in the tree and a TUF target, so it is bounded and spelled in ASCII.
"""

from __future__ import annotations

import re
import unicodedata
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
    "FILENAME_CHARACTERS",
    "MAX_FILENAME_LENGTH",
    "PACKAGE_TYPES",
    "DistFilename",
    "InvalidDistFilename",
    "PackageType",
    "check_filename",
    "classify_mirrored",
    "parse_dist_filename",
    "validate_filename",
]

PackageType = Literal["bdist_wheel", "sdist"]

# The longest name the tree builds from a filename is the hashed link of its
# core metadata, "<sha256>.<filename>.metadata" (tilsit.trust.layout): 64 + 1 +
# len + 9 bytes in one path segment, and a segment holds at most 255 bytes
# (NAME_MAX on Linux, macOS and the usual filesystems). That leaves 181; 180
# keeps one spare. Filenames are ASCII, so characters are bytes. Real names are
# far shorter (a wheel with a long manylinux tag set is about 150).
MAX_FILENAME_LENGTH = 180
# What a filename may hold: the characters every TUF client (python-tuf, tuf-js)
# requests unencoded, so every served file can be a signed target, and nothing
# that Unicode case folding (packaging lower-cases names: KELVIN SIGN becomes
# "k") or percent-decoding could make equal to another spelling.
FILENAME_CHARACTERS = "A-Za-z0-9._~!+-"
_FILENAME = re.compile(f"[{FILENAME_CHARACTERS}]+")
# The wheel name part (PEP 427 escaping of a PEP 508 name: '-' became '_'). Not
# packaging's [\w._]+, which takes any Unicode letter and folds it.
_WHEEL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?")
_SEPARATORS = re.compile(r"[-_.]+")


class InvalidDistFilename(ValueError):
    """A filename that is not a distribution filename tilsit takes (and why)."""


def _shown(filename: str) -> str:
    """``filename`` for an error message: quoted, and cut when it is very long."""
    return (
        repr(filename)
        if len(filename) <= 80
        else f"{filename[:60]!r}... ({len(filename)} characters)"
    )


def _character(char: str) -> str:
    return f"{char!r} (U+{ord(char):04X} {unicodedata.name(char, 'unnamed')})"


def check_filename(filename: str) -> str:
    """Return ``filename`` if the tree can hold it as a file name, else raise.

    What every distribution filename satisfies, uploaded or listed by another
    index: one bare path segment, not hidden, ASCII letters, digits and
    ``. _ - + ! ~`` only, at most :data:`MAX_FILENAME_LENGTH` characters.
    """
    if not filename:
        raise InvalidDistFilename("invalid filename: it is empty")
    if "/" in filename or "\\" in filename:
        raise InvalidDistFilename(
            f"invalid filename {_shown(filename)}: it must be a bare file name"
        )
    if filename.startswith("."):
        raise InvalidDistFilename(f"invalid filename {_shown(filename)}: it starts with '.'")
    if _FILENAME.fullmatch(filename) is None:
        bad = sorted({c for c in filename if _FILENAME.fullmatch(c) is None})
        shown = ", ".join(_character(c) for c in bad[:5])
        raise InvalidDistFilename(
            f"invalid filename {_shown(filename)}: it holds {shown}; a filename uses only"
            " ASCII letters, digits and '.', '_', '-', '+', '!', '~'"
        )
    if len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidDistFilename(
            f"invalid filename {_shown(filename)}: it is {len(filename)} characters long,"
            f" at most {MAX_FILENAME_LENGTH} are allowed (the tree stores its core metadata as"
            " '<sha256>.<filename>.metadata', one file name of at most 255 bytes)"
        )
    return filename


@dataclass(frozen=True, slots=True)
class DistFilename:
    filename: str
    name: str  # normalised project name (PEP 503), read from the ASCII name part
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
    check_filename(filename)
    if filename.endswith(".whl"):
        try:
            _name, version, _build, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise InvalidDistFilename(f"invalid wheel filename {filename!r}: {exc}") from exc
        name_part = filename.partition("-")[0]
        if _WHEEL_NAME.fullmatch(name_part) is None:
            raise InvalidDistFilename(
                f"invalid wheel filename {filename!r}: the name part {name_part!r} is not a"
                " project name with '-' written as '_'"
            )
        # The name as the grammar defines it, not as packaging's folding reads it.
        name = _SEPARATORS.sub("-", name_part).lower()
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
# Every packagetype a file of an index can have (what a policy's deny.kinds may name).
PACKAGE_TYPES: tuple[str, ...] = tuple(dict.fromkeys(kind for _suffix, kind in _LEGACY_TYPES))


def validate_filename(filename: str) -> str:
    """Return ``filename`` if it may be served as a distribution file, else raise.

    The grammar of files another index lists: :func:`check_filename`, then a
    wheel must parse as one and any other file must be ``<name>-<version>``
    with a distribution extension (eggs and zip sdists included, see
    :func:`classify_mirrored`). Uploads are held to :func:`parse_dist_filename`.
    """
    check_filename(filename)
    if filename.endswith(".whl"):
        parse_dist_filename(filename)
        return filename
    lower = filename.lower()
    extension = next((suffix for suffix, _kind in _LEGACY_TYPES if lower.endswith(suffix)), None)
    if extension is None:
        raise InvalidDistFilename(
            f"invalid filename {_shown(filename)}: not a distribution (expected one of"
            f" {', '.join(suffix for suffix, _kind in _LEGACY_TYPES)})"
        )
    name, dash, version = filename[: -len(extension)].partition("-")
    if not (dash and name[:1].isalnum() and version[:1].isalnum()):
        raise InvalidDistFilename(
            f"invalid filename {_shown(filename)}: expected <name>-<version>{extension}"
        )
    return filename


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
