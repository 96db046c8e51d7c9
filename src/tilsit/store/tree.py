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
import stat
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from tilsit.spec.treepaths import UnsafeTreePath, check_relative
from tilsit.store.fs import fsync_dir, sync_filesystem

__all__ = [
    "PAGE_HTML",
    "PAGE_JSON",
    "PRIVATE_MARKER",
    "VIRTUAL_MARKER",
    "Tree",
    "file_path",
    "private_root",
]

PAGE_HTML = "index.html"
PAGE_JSON = "index.v1.json"
# Present in <index>/ while the index is private: tilsit and nginx check it per
# request, so a private index is never served from the tree without a check.
PRIVATE_MARKER = ".private"
# In a virtual index's directory: nginx hands its missing pages to tilsit, whose 404 says why.
VIRTUAL_MARKER = ".virtual"


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


class _Pass(threading.local):
    """What one thread's render pass holds (see :meth:`Tree.render_pass`)."""

    def __init__(self) -> None:
        self.depth = 0
        # Directories whose entries changed and are not yet fsynced, in order.
        self.unsynced: dict[Path, None] = {}
        # Tree-relative directories checked to lie in the tree, to their real paths.
        self.checked: OrderedDict[str, Path] = OrderedDict()
        # A staged pass (see Tree.render_pass): pages written to temp files, not yet
        # fsynced nor renamed, as (temp, target), and links to such pages, as
        # (None, source page, link target), in the order they were made.
        self.stage = False
        self.staged: list[tuple[str | None, Path, Path]] = []
        self.pending: set[Path] = set()  # the targets of staged pages


# How many checked directories a pass remembers: a batch of 100 projects touches a
# few hundred (a page directory per project, one per file); a rebuild of 100,000
# projects touches more, and then the oldest are forgotten and checked again.
CHECKED_DIRS = 4096


class Tree:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp
        root.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        # Once: every path is checked against the real root, and resolving the root
        # per call was half of all the lstat calls a render made.
        self.real_root = root.resolve()
        self._pass = _Pass()

    @contextmanager
    def render_pass(self, *, staged: bool = False) -> Iterator[None]:
        """Defer this thread's directory fsyncs to the end of the block, one per directory.

        Inside the block, :meth:`write` and :meth:`link` still fsync each file
        before its rename, but the directory that gained the entry is fsynced
        once, when the block ends (normally or not), however many entries it
        gained. Whoever signs or records what was written (a TUF round, the
        ``.serial`` marker) must do so after the block: only then are the names
        durable. Other threads and code outside a block are not affected, so a
        trust round or a key file written meanwhile is durable when its write
        returns. Blocks nest; the outermost one syncs. Directories checked by
        :meth:`path` are remembered for the block (see there).

        ``staged`` (the outermost block decides), for renders of many projects (a
        mirror's batch, a rebuild): :meth:`write` only writes the page to a temp
        file; at the next :meth:`sync_dirs` (and at the end of the block) one
        ``syncfs`` makes every staged page durable, they are renamed into place in
        the order they were written, and one more ``syncfs`` makes the names
        durable. A reader still sees each page old or new, never a mix, and a page
        appears only after the files placed before it; until then it is not in the
        tree, so nothing inside the block may read back a page it wrote. A
        :meth:`link` to a staged page (its hashed name) is staged with it and made
        after the page is in place, so it never names bytes that are not durable.
        """
        state = self._pass
        if state.depth == 0:
            state.stage = staged
        state.depth += 1
        try:
            yield
        finally:
            state.depth -= 1
            if state.depth == 0:
                state.checked.clear()
                try:
                    self.sync_dirs()
                finally:
                    state.stage = False

    def sync_dirs(self) -> None:
        """fsync every directory this thread's render pass changed, each once.

        All are tried; the first failure is raised after (a directory that is gone,
        or a disk error: the caller must not sign or record what the pass wrote).
        """
        if self._pass.staged:
            self._place_staged()
        unsynced, self._pass.unsynced = self._pass.unsynced, {}
        if self._pass.stage and unsynced:
            sync_filesystem(self.real_root)  # every directory at once
            return
        failure: OSError | None = None
        for directory in unsynced:
            try:
                fsync_dir(directory)
            except OSError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _place_staged(self) -> None:
        """The staged pages durable, then renamed into place in order (see render_pass).
        On a failure none that is left is renamed, and their temp files are removed."""
        staged, self._pass.staged = self._pass.staged, []
        self._pass.pending.clear()
        placed = 0
        try:
            sync_filesystem(self.tmp)
            for temp, source, target in staged:
                if temp is None:
                    self._link_now(target, source)
                else:
                    os.replace(temp, target)
                    self._pass.unsynced[target.parent] = None
                placed += 1
        finally:
            for temp, _source, _target in staged[placed:]:
                if temp is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(temp)

    def _synced(self, directory: Path) -> None:
        """``directory`` gained an entry: fsync it now, or at the end of the render pass."""
        if self._pass.depth:
            self._pass.unsynced[directory] = None
        else:
            fsync_dir(directory)

    def path(self, relative: str) -> Path:
        """The file at ``relative``; :class:`UnsafeTreePath` if it could leave the
        directory its first segment names (lexically, or through a symlink).

        The lexical check is :func:`check_relative`. Then no symlink may lead out
        of the tree: each directory on the way is ``lstat``-ed once and, inside a
        render pass, remembered (up to :data:`CHECKED_DIRS`) as a real directory
        in the tree, so a pass checks the last segment only, for most paths. A
        symlink on the way (tilsit never makes one; an operator might) is
        resolved in full and allowed only if it stays in the tree, as before.

        Why remembering is safe: the check guards against symlinks that are in
        the tree when the pass starts (its memory ends with the pass), and paths
        are checked lexically besides. A symlink planted during a pass could only
        come from someone who can write the tree, and so replace any page or
        link anyway; and a check before a write could never rule one out planted
        between the two, remembered or not.
        """
        segments = check_relative(relative)
        directory = self._checked_dir(segments[:-1])
        if directory is None:
            return self._resolved(relative)
        path = directory / segments[-1]
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return path  # not there (yet): it is made as a file or directory, not a link
        return self._resolved(relative) if stat.S_ISLNK(mode) else path

    def _resolved(self, relative: str) -> Path:
        path = (self.real_root / relative).resolve()
        if not path.is_relative_to(self.real_root):
            raise UnsafeTreePath(relative, "it leaves the tree")
        return path

    def _checked_dir(self, parents: list[str]) -> Path | None:
        """The real directory ``parents`` names in the tree; None when a symlink is on the way."""
        checked = self._pass.checked if self._pass.depth else None
        keys = ["/".join(parents[: i + 1]) for i in range(len(parents))]
        known = len(parents)
        # The deepest directory on the way already checked in this pass.
        while known and (checked is None or keys[known - 1] not in checked):
            known -= 1
        directory = self.real_root
        if known:
            assert checked is not None
            checked.move_to_end(keys[known - 1])
            directory = checked[keys[known - 1]]
        for i in range(known, len(parents)):
            directory = directory / parents[i]
            try:
                mode = os.lstat(directory).st_mode
            except OSError:
                # Not there yet (made as a real directory by the writer), or not a
                # directory (the write fails there): nothing below can be a link.
                return directory.joinpath(*parents[i + 1 :])
            if stat.S_ISLNK(mode):
                return None
            if checked is not None and stat.S_ISDIR(mode):
                checked[keys[i]] = directory
                if len(checked) > CHECKED_DIRS:
                    checked.popitem(last=False)
        return directory

    def write(self, relative: str, data: bytes) -> None:
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self._pass.depth > 0 and self._pass.stage:
            temp = self._temp_file(data, durable=False)
            self._pass.staged.append((str(temp), target, target))
            self._pass.pending.add(target)
            return
        self.install(relative, self._temp_file(data, durable=True))

    def prepare(self, data: bytes) -> Path:
        """``data`` in a durable temp file of the tree's filesystem, for :meth:`install`.

        A large page (the project list of 100,000 projects is megabytes) is written and
        fsynced here, outside the render lock, so that the lock is held only for the
        rename. The caller removes the file if it is never installed.
        """
        return self._temp_file(data, durable=True)

    def _temp_file(self, data: bytes, *, durable: bool) -> Path:
        """``data`` in a new temp file in ``tmp``, fsynced if ``durable``, readable by all."""
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="page-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.chmod(name, 0o644)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
        return Path(name)

    def install(self, relative: str, prepared: Path) -> None:
        """Rename a file from :meth:`prepare` into place at ``relative``, as :meth:`write`
        would have placed its bytes (its directory fsynced now or at the pass's end)."""
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(prepared, target)
        except BaseException:
            prepared.unlink(missing_ok=True)
            raise
        self._synced(target.parent)

    def read(self, relative: str) -> bytes | None:
        try:
            return self.path(relative).read_bytes()
        except FileNotFoundError:
            return None

    def link(self, relative: str, source: Path) -> None:
        """Place ``source`` (a blob, or a page) at ``relative``, as a hard link when
        possible; a link to a page a staged pass has not placed yet waits for it."""
        target = self.path(relative)
        if self._pass.depth and source in self._pass.pending:
            self._pass.staged.append((None, source, target))
            return
        self._link_now(target, source)

    def _link_now(self, target: Path, source: Path) -> None:
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
        self._synced(target.parent)

    def remove(self, relative: str) -> None:
        target = self.path(relative)
        target.unlink(missing_ok=True)
        # Drop now-empty directories up to the tree root so stale paths 404.
        parent = target.parent
        while parent != self.real_root:
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
