"""Project names: validity, PEP 503 normalisation, and the confusable key.

PyPI refuses a new project whose name differs from an existing one only by
separators or look-alike characters; :func:`confusable_key` is the form in
which two such names compare equal.
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_VERSION_LENGTH",
    "InvalidProjectName",
    "InvalidVersionText",
    "confusable_key",
    "fold_confusable",
    "is_normalized",
    "is_valid_name",
    "normalize",
    "validate_name",
    "validate_version",
]

# A project name becomes a directory of the tree (<index>/simple/<name>/,
# <index>/pypi/<name>/), which every common filesystem caps at 255 bytes, and
# every file of the project carries the name again inside its filename, where
# the filename bound (spec/filenames.py) must also leave room for the version,
# the tags, and the "<sha256>." and ".metadata" the tree adds to hashed links
# and staging names. 128 leaves that room with a wide margin; names in use on
# PyPI are far shorter. Without a bound, one name the tree cannot hold made
# every later render fail (issue 9, item 8).
MAX_NAME_LENGTH = 128
# A release version becomes a directory too (<index>/pypi/<name>/<version>/json)
# and part of every filename of the release; 64 characters hold any real
# PEP 440 version (dates, long pre/post/dev segments) many times over.
MAX_VERSION_LENGTH = 64

# PEP 508 / core metadata "Name": ASCII letters and digits, with ., - and _
# inside but not at either end. re.ASCII: with IGNORECASE alone, [A-Z] also
# matches the KELVIN SIGN and the long s, which lower() folds to "k" and "s".
_VALID_NAME = re.compile(r"([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])", re.IGNORECASE | re.ASCII)
_SEPARATORS = re.compile(r"[-_.]+")
_CONFUSABLE = str.maketrans({"l": "1", "i": "1", "o": "0"})


class InvalidProjectName(ValueError):
    """A string that is not a valid distribution name."""


class InvalidVersionText(ValueError):
    """A release version that the tree cannot hold (too long, or not one path segment)."""


def is_valid_name(name: str) -> bool:
    # fullmatch: with match(), "$" also matches before a trailing newline.
    return len(name) <= MAX_NAME_LENGTH and _VALID_NAME.fullmatch(name) is not None


def validate_name(name: str) -> str:
    """Return ``name`` unchanged if it is a valid project name, else raise."""
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidProjectName(
            f"The project name is {len(name)} characters long: at most {MAX_NAME_LENGTH}"
            f" are allowed ({name[:40]!r}...)"
        )
    if not _VALID_NAME.fullmatch(name):
        raise InvalidProjectName(
            f"{name!r} is not a valid project name: use ASCII letters, digits, '.', '-' and '_',"
            " starting and ending with a letter or digit"
        )
    return name


def validate_version(version: str) -> str:
    """Return ``version`` unchanged if the tree can hold it as a release, else raise.

    Only the bound: whether it is a PEP 440 version is for :mod:`packaging`.
    """
    if len(version) > MAX_VERSION_LENGTH:
        raise InvalidVersionText(
            f"The version is {len(version)} characters long: at most {MAX_VERSION_LENGTH}"
            f" are allowed ({version[:40]!r}...)"
        )
    if version in ("", ".", "..") or any(c in "/\\" or not c.isprintable() for c in version):
        raise InvalidVersionText(f"{version!r} is not a version")
    return version


def normalize(name: str) -> str:
    """PEP 503 normalisation: lower case, runs of ``-_.`` become one ``-``."""
    return _SEPARATORS.sub("-", name).lower()


def is_normalized(name: str) -> bool:
    return normalize(name) == name


def confusable_key(name: str) -> str:
    """The key under which look-alike names collide.

    Separators are dropped and the characters most often swapped in
    typosquats (``l``/``i`` for ``1``, ``o`` for ``0``) are folded together.
    """
    return _SEPARATORS.sub("", name.lower()).translate(_CONFUSABLE)


def fold_confusable(name: str) -> str:
    """``name`` normalised with the look-alike characters of :func:`confusable_key`
    folded, separators kept: what a reserved prefix such as ``acme-`` is compared in,
    so that ``acme-*`` covers look-alikes of ``acme-`` names and not ``acmeist``."""
    return normalize(name).translate(_CONFUSABLE)
