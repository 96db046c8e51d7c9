"""What a member of an archive may be called, and the result both readers return.

The ZIP and tar readers apply the same rules to member names, so that a name that would
escape an extraction directory, or that two tools would map to two different files, is
refused whichever archive format carries it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tilsit.dists.errors import UnsafeArchive, UnsafeMember

__all__ = ["Archive", "KeepMember", "Member", "MemberTree", "check_member_name", "keep_nothing"]

# A name the caller wants the contents of (METADATA, WHEEL, PKG-INFO), given the member name.
KeepMember = Callable[[str], bool]

_DRIVE = re.compile(r"^[A-Za-z]:")
# C0 controls and DEL: a newline in a name breaks RECORD files, logs and terminals.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def keep_nothing(_name: str) -> bool:
    """The default :data:`KeepMember`: verify every member, keep none."""
    return False


@dataclass(frozen=True, slots=True)
class Member:
    """One member of an archive: its checked name (no trailing slash) and inflated size."""

    name: str
    is_dir: bool
    size: int


@dataclass(frozen=True, slots=True)
class Archive:
    """An archive read in full: its members in archive order, and the contents kept."""

    members: tuple[Member, ...]
    kept: Mapping[str, bytes] = field(default_factory=dict)


def check_member_name(name: str, *, is_dir: bool) -> str:
    """Refuse a member name that could escape or alias; return it without a trailing slash.

    Refused: empty names, absolute paths, drive letters, backslashes (a separator on
    Windows), control characters, and empty, ``.`` or ``..`` components (``a//b`` and
    ``a/./b`` are other spellings of ``a/b``, so they would defeat the duplicate check).
    """
    shown = repr(name)
    if not name:
        raise UnsafeMember("The archive has a member with an empty name.")
    if _CONTROL.search(name):
        raise UnsafeMember(f"Member name {shown} contains a control character.")
    if name.startswith("/"):
        raise UnsafeMember(f"Member name {shown} is an absolute path.")
    if "\\" in name:
        raise UnsafeMember(
            f"Member name {shown} contains a backslash, which Windows reads as a separator."
        )
    if _DRIVE.match(name):
        raise UnsafeMember(f"Member name {shown} starts with a drive letter.")
    stripped = name[:-1] if is_dir and name.endswith("/") else name
    for part in stripped.split("/"):
        if part == "..":
            raise UnsafeMember(f"Member name {shown} has a '..' component that climbs out.")
        if part in ("", "."):
            raise UnsafeMember(
                f"Member name {shown} has an empty or '.' component, another spelling of a"
                " different name."
            )
    return stripped


class MemberTree:
    """Collects member names and refuses duplicates and file/directory clashes.

    Two members with one name are read differently by different tools (first one wins, last
    one wins), and so are a file ``a`` beside a member ``a/b``.
    """

    def __init__(self) -> None:
        self._files: set[str] = set()
        self._dirs: set[str] = set()  # explicit directory members
        self._parents: set[str] = set()  # every directory some member lies in

    def add(self, name: str, *, is_dir: bool) -> None:
        if name in self._files or name in self._dirs:
            raise UnsafeArchive(f"The archive has two members named {name!r}.")
        if not is_dir and name in self._parents:
            raise UnsafeArchive(f"{name!r} is both a file and a directory in the archive.")
        parent, _, _ = name.rpartition("/")
        while parent and parent not in self._parents:
            if parent in self._files:
                raise UnsafeArchive(f"{parent!r} is both a file and a directory in the archive.")
            self._parents.add(parent)
            parent, _, _ = parent.rpartition("/")
        (self._dirs if is_dir else self._files).add(name)
