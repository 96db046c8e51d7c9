"""Project names: validity, PEP 503 normalisation, and the confusable key.

PyPI refuses a new project whose name differs from an existing one only by
separators or look-alike characters; :func:`confusable_key` is the form in
which two such names compare equal.
"""

from __future__ import annotations

import re

__all__ = [
    "InvalidProjectName",
    "confusable_key",
    "is_normalized",
    "normalize",
    "validate_name",
]

# PEP 508 / core metadata "Name": ASCII letters and digits, with ., - and _
# inside but not at either end.
_VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[-_.]+")
_CONFUSABLE = str.maketrans({"l": "1", "i": "1", "o": "0"})


class InvalidProjectName(ValueError):
    """A string that is not a valid distribution name."""


def validate_name(name: str) -> str:
    """Return ``name`` unchanged if it is a valid project name, else raise."""
    if not _VALID_NAME.match(name):
        raise InvalidProjectName(
            f"{name!r} is not a valid project name: use ASCII letters, digits, '.', '-' and '_',"
            " starting and ending with a letter or digit"
        )
    return name


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
