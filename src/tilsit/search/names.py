"""Names as a search matches them: PEP 503 normalised, and their one-deletion neighbourhood.

A typo of one character (left out, added, changed, or two neighbours swapped) leaves
the typed name and the real one sharing a spelling with one character left out:
``reqests`` is ``requests`` without its ``u``; ``reqeusts`` and ``requests`` both give
``requsts``. SQLite keeps every name's neighbourhood in a table (``search_names``), so
a typo is found by an indexed lookup of the query's neighbourhood; PostgreSQL uses
pg_trgm instead. Candidates are then ranked by their real edit distance.
"""

from __future__ import annotations

import re

from tilsit.spec.names import normalize

__all__ = [
    "MIN_FUZZY",
    "as_name",
    "deletions",
    "edit_distance",
]

# Shorter names have neighbourhoods that meet too many other short names to be useful.
MIN_FUZZY = 4
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,198}[a-z0-9])?$")


def as_name(query: str) -> str | None:
    """The query as a normalised project name, or None when it cannot be one (spaces,
    symbols): then only the text is searched."""
    candidate = normalize(query.strip())
    return candidate if _NAME.match(candidate) else None


def deletions(name: str) -> set[str]:
    """``name`` and every spelling of it with one character left out."""
    out = {name}
    if len(name) >= MIN_FUZZY:
        out.update(name[:i] + name[i + 1 :] for i in range(len(name)))
    return out


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and
    swaps of two neighbours each count one."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]
