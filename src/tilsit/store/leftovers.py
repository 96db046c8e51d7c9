"""Temporary files that a killed process left behind in the data directory's ``tmp/``.

Every temporary file tilsit writes goes to ``<data>/tmp`` (on the filesystem of
the blobs and the tree, so it can be renamed into place): uploads streaming in
(``upload-``), blobs (``blob-``), pages (``page-``), tree links (``link-``),
proxy and mirror fetches (``proxy-``, ``mirror-<index>-``) and blobs fsck is
reaping (``reap-``). A process killed mid-write leaves its file there forever.

Another process may be writing one right now (a mirror sync run from the CLI
while ``serve`` starts), and a file being written has a fresh mtime; so only
files not modified for a grace period are removed.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

__all__ = ["LEFTOVER_GRACE", "reap_leftovers"]

# An hour without a write: no upload, fetch or page write pauses that long.
LEFTOVER_GRACE = 3600


def reap_leftovers(
    tmp_dir: Path, grace: float = LEFTOVER_GRACE, *, dry_run: bool = False
) -> list[str]:
    """Remove regular files in ``tmp_dir`` unmodified for ``grace`` seconds; their names
    (with ``dry_run``, only name them)."""
    cutoff = time.time() - grace
    reaped: list[str] = []
    try:
        entries = list(os.scandir(tmp_dir))
    except FileNotFoundError:
        return reaped
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # its writer renamed it into place meanwhile
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_mtime > cutoff:
            continue
        try:
            if not dry_run:
                os.unlink(entry.path)
        except FileNotFoundError:
            continue
        reaped.append(entry.name)
    return sorted(reaped)
