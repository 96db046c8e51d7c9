"""Paths into the static tree that arrive from outside, checked in one place.

A mirror writes its origin's signed target paths, hashed link names and TUF
metadata names into the tree; a mirror or proxy turns the filenames an upstream
page lists into ``packages/<aa>/<bb>/<rest>/<filename>``. Each such path is
checked here before it touches the tree or the database, against the tree's
layout (``tilsit.store.tree``), relative to an index's base directory:

- pages: ``simple/index.html|index.v1.json`` and
  ``simple/<normalized project>/index.html|index.v1.json``;
- files: ``packages/<aa>/<bb>/<rest>/<filename>[.metadata]``, the directories
  a 64-hex sha256 split 2/2/60 and the filename a distribution filename
  (:func:`tilsit.spec.filenames.validate_filename`);
- the legacy JSON of a project and of each release
  (``pypi/<normalized project>/[<version>/]json``), whose version directory
  comes from an upstream's ``versions`` list or a file's name;
- the hashed variants of pages and files (``<sha256>.<name>``), and TUF
  metadata names (``tuf/[N.]<role>.json``).

Anything else is refused with :class:`UnsafeTreePath`, which says what is
wrong: ``..``, ``.`` or empty segments, backslashes, control characters,
absolute paths, percent-encoding or other characters clients would request
encoded, or a path of another shape. A checked path cannot leave its index's
directory, since no segment climbs.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from tilsit.spec.filenames import FILENAME_CHARACTERS, InvalidDistFilename, validate_filename

__all__ = [
    "NAME_MAX",
    "PAGES",
    "PathShape",
    "UnsafeTreePath",
    "check_relative",
    "check_target",
    "path_shape",
    "tree_path",
]

# The longest file name (one path segment, in bytes) the usual filesystems hold.
NAME_MAX = 255
PAGES = ("index.html", "index.v1.json")

PathShape = Literal["page", "file", "hashed page", "hashed file", "metadata", "legacy json"]

_CHARACTERS = re.compile(f"[{FILENAME_CHARACTERS}/]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEX2 = re.compile(r"[0-9a-f]{2}")
_HEX60 = re.compile(r"[0-9a-f]{60}")
_HASHED = re.compile(r"([0-9a-f]{64})\.(.+)")
# A normalized project name (PEP 503): what tilsit names a project's directory.
_PROJECT = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?!-))*(?<=[a-z0-9])")
# A release's directory: what a version may be spelled with, never "." or "..".
_VERSION = re.compile(f"[A-Za-z0-9][{FILENAME_CHARACTERS}]*")
# As tilsit.index.manage creates them.
_INDEX = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
# N.root.json, root.json, N.targets.json, N.bins-xx.json, N.snapshot.json,
# timestamp.json; the role names of a delegation are the origin's to choose.
_METADATA = re.compile(r"(?:[1-9][0-9]{0,18}\.)?[A-Za-z0-9][A-Za-z0-9_-]{0,99}\.json")


class UnsafeTreePath(ValueError):
    """A path from outside that the tree must not hold, and why."""

    def __init__(self, path: str, reason: str) -> None:
        shown = path if len(path) <= 120 else f"{path[:100]}... ({len(path)} characters)"
        super().__init__(f"unsafe path {shown!r}: {reason}")
        self.path = path
        self.reason = reason


def check_relative(path: str) -> list[str]:
    """The segments of a relative tree path that cannot climb, else raise.

    Lexical only, so any path the tree writes can pass it (the tree writer
    applies it to every path, its own included): no absolute path, no empty,
    ``.`` or ``..`` segment, no backslash or control character, and no segment
    longer than :data:`NAME_MAX` bytes.
    """
    segments = _segments(path)
    _check_lengths(path, segments)
    return segments


def _segments(path: str) -> list[str]:
    if not path:
        raise UnsafeTreePath(path, "it is empty")
    for char in path:
        if ord(char) < 32 or ord(char) == 127:
            raise UnsafeTreePath(path, f"it holds the control character U+{ord(char):04X}")
    if "\\" in path:
        raise UnsafeTreePath(path, "it holds a backslash")
    if path.startswith("/"):
        raise UnsafeTreePath(path, "it is absolute")
    segments = path.split("/")
    for segment in segments:
        if segment == "":
            raise UnsafeTreePath(path, "it has an empty segment")
        if segment in (".", ".."):
            raise UnsafeTreePath(path, f"it has a {segment!r} segment")
    return segments


def _check_lengths(path: str, segments: list[str]) -> None:
    for segment in segments:
        size = len(segment.encode("utf-8", "surrogatepass"))
        if size > NAME_MAX:
            raise UnsafeTreePath(
                path, f"File name too long: a segment of {size} bytes, at most {NAME_MAX} fit"
            )


def _character(char: str) -> str:
    return f"{char!r} (U+{ord(char):04X} {unicodedata.name(char, 'unnamed')})"


def _file_name(path: str, name: str) -> None:
    try:
        validate_filename(name.removesuffix(".metadata"))
    except InvalidDistFilename as exc:
        raise UnsafeTreePath(path, str(exc)) from exc


def path_shape(path: str) -> PathShape:
    """What ``path`` (relative to an index's base) is in the tree's layout, else raise."""
    segments = _segments(path)
    if "%" in path:
        raise UnsafeTreePath(path, "it holds '%' (percent-encoding)")
    if _CHARACTERS.fullmatch(path) is None:
        bad = sorted({c for c in path if _CHARACTERS.fullmatch(c) is None})
        raise UnsafeTreePath(
            path,
            f"it holds {', '.join(_character(c) for c in bad[:5])}; tree paths use only"
            " ASCII letters, digits and '.', '_', '-', '+', '!', '~'",
        )
    match segments:
        case ["simple", page] | ["simple", _, page] if page in PAGES:
            shape: PathShape = "page"
        case ["simple", name] | ["simple", _, name] if (
            hashed := _HASHED.fullmatch(name)
        ) is not None and hashed[2] in PAGES:
            shape = "hashed page"
        case ["packages", aa, bb, rest, name]:
            if not (_HEX2.fullmatch(aa) and _HEX2.fullmatch(bb) and _HEX60.fullmatch(rest)):
                raise UnsafeTreePath(
                    path, "a file's directories must be its sha256 split as aa/bb/rest (hex)"
                )
            hashed = _HASHED.fullmatch(name)
            _file_name(path, hashed[2] if hashed is not None else name)
            shape = "hashed file" if hashed is not None else "file"
        case ["tuf", name] if _METADATA.fullmatch(name):
            shape = "metadata"
        case ["pypi", _, "json"]:
            shape = "legacy json"
        case ["pypi", _, version, "json"]:
            if _VERSION.fullmatch(version) is None:
                raise UnsafeTreePath(path, f"{version!r} cannot name a release's directory")
            shape = "legacy json"
        case _:
            raise UnsafeTreePath(
                path,
                "not a path of an index: expected simple/[<project>/]index.html|index.v1.json,"
                " packages/<aa>/<bb>/<rest>/<filename>[.metadata], pypi/<project>/[<version>/]json"
                " or tuf/<metadata>.json",
            )
    named = shape == "legacy json" or (shape in ("page", "hashed page") and len(segments) == 3)
    if named and not _PROJECT.fullmatch(segments[1]):
        raise UnsafeTreePath(path, f"{segments[1]!r} is not a normalized project name")
    _check_lengths(path, segments)  # after the shape, whose reasons say more
    return shape


def check_target(path: str) -> PathShape:
    """Check a TUF target path as an origin signs one (a page or a file), else raise.

    Never a hashed link or metadata: those names are derived from targets, and
    a target named like them would overwrite them.
    """
    shape = path_shape(path)
    if shape not in ("page", "file"):
        raise UnsafeTreePath(path, f"a {shape} path cannot be a target")
    return shape


def tree_path(index: str, path: str, *, shared: bool = False) -> str:
    """The tree-relative path of ``path`` under ``index``'s base directory, else raise.

    ``shared``: a public index's plain file, which lives in the shared
    ``packages/`` at the top of the tree rather than under ``<index>/``.
    """
    if _INDEX.fullmatch(index) is None:
        raise UnsafeTreePath(index, "not an index name")
    shape = path_shape(path)
    if shared:
        if shape != "file":
            raise UnsafeTreePath(path, "only a plain file name lives in the shared packages/")
        return path
    return f"{index}/{path}"
