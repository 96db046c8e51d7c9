"""Version identity: which spellings of a version are one version (PEP 440).

``packaging.version.Version`` equality drops trailing zeros of the release and
reads numbers as integers, so ``3``, ``3.0``, ``3.0.0`` and ``03.0`` are equal;
:func:`version_key` gives them one string that a database can index.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

__all__ = ["equal_spellings", "version_key"]

# Marks a key made from text that is not a PEP 440 version (an old mirrored
# file's name): such text is compared exactly, and no version's key starts so.
_NOT_PEP440 = "~"


def version_key(version: str) -> str:
    """What equal versions share: the normal form with trailing release zeros dropped.

    ``version_key("3.0.0") == version_key("03.0") == "3"``; text that is not a
    PEP 440 version is its own key (marked so it meets no version's key).
    """
    try:
        parsed = Version(version)
    except InvalidVersion:
        return _NOT_PEP440 + version
    release = list(parsed.release)
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    return _spelled(parsed, release)


def equal_spellings(version: str, longest: int = 4) -> list[str]:
    """Normal forms of ``version`` with its release zero-padded to each length up to
    ``longest`` numbers (``"3"``: ``3``, ``3.0``, ``3.0.0``, ``3.0.0.0``); [] if it is
    not a version. Where a release is kept under its first-seen spelling, these are
    the few names to look it up by."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return []
    release = list(parsed.release)
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    return [
        _spelled(parsed, release + [0] * (length - len(release)))
        for length in range(len(release), max(len(release), longest) + 1)
    ]


def _spelled(parsed: Version, release: list[int]) -> str:
    """``str(parsed)`` with ``release`` for its release numbers."""
    text = f"{parsed.epoch}!" if parsed.epoch else ""
    text += ".".join(str(number) for number in release)
    if parsed.pre is not None:
        text += f"{parsed.pre[0]}{parsed.pre[1]}"
    if parsed.post is not None:
        text += f".post{parsed.post}"
    if parsed.dev is not None:
        text += f".dev{parsed.dev}"
    if parsed.local is not None:
        text += f"+{parsed.local}"
    return text
