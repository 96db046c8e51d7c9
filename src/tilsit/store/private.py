"""Files that hold secrets: created owner-only from the first byte, and checked at start-up.

The database (TOTP seeds, token and session hashes, the audit log), its WAL and
journal files, and the mail outbox (reset and verification links) are secrets
at rest. Creating such a file with the default umask and tightening it after
leaves a window in which another local user may open it and keep the
descriptor, so each is created with its final mode by ``os.open``, and
directories with ``mkdir(mode=0o700)``. SQLite creates its ``-wal``, ``-shm``
and ``-journal`` files with the mode of the database file, so a database file
created owner-only keeps them owner-only too.

:func:`tighten` is what ``tilsit serve`` runs at start-up on a data directory
made by an older tilsit, or touched by hand: it fixes what it owns and names
each file it changed; what it cannot fix (another owner) it names in a
:class:`LooseSecretMode` error, so the server does not start with it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tilsit.operator import OperatorError

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "SQLITE_SIDE_FILES",
    "LooseSecretMode",
    "ModeFix",
    "create_private_file",
    "private_dir",
    "tighten",
    "write_private",
]

FILE_MODE = 0o600
DIR_MODE = 0o700
# The suffixes SQLite adds to a database path for its side files.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class LooseSecretMode(OperatorError):
    """A secret file or directory that others may read, and that tilsit cannot tighten."""


@dataclass(frozen=True, slots=True)
class ModeFix:
    path: Path
    old: int
    new: int

    def __str__(self) -> str:
        return f"{self.path}: mode {self.old:o} -> {self.new:o} (it holds secrets)"


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) a directory only its owner may enter."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty and owner-only if it does not exist; True if it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` atomically, owner-only from the first byte (mkstemp creates 0600)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def _tighten_one(path: Path, fixes: list[ModeFix], refused: list[str]) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        # A link could point anywhere; chmod would follow it. Name it instead.
        refused.append(f"{path} is a symbolic link; a secret must be a plain file")
        return
    current = stat.S_IMODE(info.st_mode)
    if current & 0o077 == 0:
        return
    if info.st_uid != os.geteuid():
        refused.append(f"{path} has mode {current:o} and belongs to uid {info.st_uid}")
        return
    new = current & ~0o077
    os.chmod(path, new)
    fixes.append(ModeFix(path, current, new))


def tighten(files: list[Path], directories: list[Path]) -> list[ModeFix]:
    """Remove group and other access from each existing path; the changes made.

    Raises :class:`LooseSecretMode` naming every path it could not fix.
    """
    fixes: list[ModeFix] = []
    refused: list[str] = []
    for directory in directories:
        _tighten_one(directory, fixes, refused)
        if directory.is_dir() and not directory.is_symlink():
            for child in sorted(directory.iterdir()):
                if child.is_file() or child.is_symlink():
                    _tighten_one(child, fixes, refused)
    for path in files:
        _tighten_one(path, fixes, refused)
    if refused:
        raise LooseSecretMode(
            "files that hold secrets are readable by others and tilsit cannot fix them: "
            + "; ".join(refused)
            + "; run tilsit as their owner, or chmod go-rwx them (and chown them to that user)"
        )
    return fixes
