"""The static tree on disk, written atomically.

Layout (the contract nginx, a CDN, rsync and ``tilsit serve`` share)::

    packages/<aa>/<bb>/<rest of sha256>/<filename>           the file (hard link to its blob)
    packages/<aa>/<bb>/<rest of sha256>/<filename>.metadata  core metadata of a wheel
    <index>/simple/index.html, index.v1.json                 the project list
    <index>/simple/<project>/index.html, index.v1.json       a project page
    <index>/pypi/<project>/json, <index>/pypi/<project>/<version>/json   legacy JSON
    <index>/packages/<aa>/<bb>/<rest of sha256>/<filename>   a private index's files
    <index>/.private                                         marks a private index
    <index>/tuf/N.root.json, root.json, N.targets.json,      the index's TUF metadata
        N.bins-xxx.json, N.snapshot.json, timestamp.json     (see tilsit.trust; timestamp last)
    <index>/simple/[<project>/]<sha256>.index.html|.index.v1.json   signed pages, by hash
    <index>/packages/<aa>/<bb>/<rest>/<sha256>.<filename>[.metadata] signed files, by hash
    .serial                                                  last journal serial rendered

TUF target paths are relative to ``<index>/`` (``simple/…``, ``packages/…``), and
the hashed names are hard links to the same inodes as the plain names pip fetches.

Every page is written to a temp file on the same filesystem, fsynced and
renamed over the old one, so a reader sees the old page or the new one, never
a mix.

Paths from outside are checked against this layout before they get here
(:mod:`tilsit.spec.treepaths`); the writer still refuses any path that could
climb out of the directory it names (``..``, ``.``, empty segments, absolute
paths, control characters) or that no filesystem holds (a segment over 255
bytes), so a check missed upstream cannot write into another index.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

from tilsit.spec.treepaths import UnsafeTreePath, check_relative
from tilsit.store.fs import fsync_dir

__all__ = ["PAGE_HTML", "PAGE_JSON", "PRIVATE_MARKER", "Tree", "file_path", "private_root"]

PAGE_HTML = "index.html"
PAGE_JSON = "index.v1.json"
# Present in <index>/ while the index is private: tilsit and nginx check it per
# request, so a private index is never served from the tree without a check.
PRIVATE_MARKER = ".private"


def private_root(index: str) -> str:
    """Where a private index's files live: under the index's own URL path, so that
    the access check is by the first path segment and ``/packages/`` never holds them."""
    return f"{index}/"


def file_path(sha256: str, filename: str, root: str = "") -> str:
    """Tree-relative path of a distribution file, also its URL path under ``/``.

    ``root`` is "" for the shared ``packages/`` of public indexes, or
    :func:`private_root` of a private index.
    """
    return f"{root}packages/{sha256[:2]}/{sha256[2:4]}/{sha256[4:]}/{filename}"


def file_url(sha256: str, filename: str, base_url: str = "", root: str = "") -> str:
    return f"{base_url.rstrip('/')}/{quote(file_path(sha256, filename, root))}"


class Tree:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp
        root.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)

    def path(self, relative: str) -> Path:
        """The file at ``relative``; :class:`UnsafeTreePath` if it could leave the
        directory its first segment names (lexically, or through a symlink)."""
        check_relative(relative)
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise UnsafeTreePath(relative, "it leaves the tree")
        return path

    def write(self, relative: str, data: bytes) -> None:
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="page-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(name, 0o644)
            os.replace(name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
        fsync_dir(target.parent)

    def read(self, relative: str) -> bytes | None:
        try:
            return self.path(relative).read_bytes()
        except FileNotFoundError:
            return None

    def link(self, relative: str, source: Path) -> None:
        """Place ``source`` (a blob) at ``relative``, as a hard link when possible."""
        target = self.path(relative)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # Short and unique, never the target's name: "link-<pid>-" before a name
        # that already fills a segment would pass NAME_MAX.
        staging = self.tmp / f"link-{os.getpid()}-{secrets.token_hex(8)}"
        try:
            try:
                os.link(source, staging)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                shutil.copyfile(source, staging)
                with open(staging, "rb+") as fh:
                    os.fsync(fh.fileno())
            os.replace(staging, target)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)

    def remove(self, relative: str) -> None:
        target = self.path(relative)
        target.unlink(missing_ok=True)
        # Drop now-empty directories up to the tree root so stale paths 404.
        parent = target.parent
        root = self.root.resolve()
        while parent != root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def remove_dir(self, relative: str) -> None:
        shutil.rmtree(self.path(relative), ignore_errors=True)

    def serial(self) -> int:
        raw = self.read(".serial")
        return int(raw) if raw else 0

    def set_serial(self, serial: int) -> None:
        self.write(".serial", f"{serial}\n".encode())
