"""A distribution file's place in the static tree, on either blob store.

On the filesystem store a file's tree path is a hard link to its blob, so nginx,
a CDN's origin pull or rsync serve the bytes themselves. On S3 the bytes are not
on this host: the tree path holds a small *pointer* naming the blob (its sha256
and size), which tilsit's read path resolves by streaming the blob from the store
or redirecting to a presigned URL (``s3_serve_files``). The printed nginx config
sends those paths to tilsit, so no pointer is ever served as a file; a copy of the
tree made with rsync carries pointers, and a client that fetched one would refuse
it (its sha256 is not the file's). Core metadata (``.metadata``) is small and is
written into the tree as bytes on both stores, so it is served like a page.

Every place that puts a blob into the tree goes through here, so none can assume
a local file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from tilsit.store.blobs import BlobCorrupt, BlobStore, MissingBlob
from tilsit.store.tree import Tree

__all__ = ["POINTER_MAX", "BlobPointer", "place_blob", "place_small_blob", "read_pointer"]

_MAGIC = b"tilsit-blob-pointer/1 "
_POINTER = re.compile(rb"tilsit-blob-pointer/1 sha256=([0-9a-f]{64}) size=(\d{1,18})\n")
# No pointer is longer; a reader reads this much to tell one from a file.
POINTER_MAX = 128


@dataclass(frozen=True, slots=True)
class BlobPointer:
    sha256: str
    size: int


def _pointer(sha256: str, size: int) -> bytes:
    return _MAGIC + f"sha256={sha256} size={size}\n".encode()


def read_pointer(data: bytes) -> BlobPointer | None:
    """The blob a tree file points at, or None if ``data`` is not a pointer."""
    match = _POINTER.fullmatch(data)
    if match is None:
        return None
    return BlobPointer(match[1].decode(), int(match[2]))


def place_blob(tree: Tree, relative: str, blobs: BlobStore, sha256: str, size: int) -> None:
    """Put the blob ``sha256`` (of ``size`` bytes) at tree path ``relative``: a hard
    link to its file on this disk, or a pointer where the store keeps none."""
    local = blobs.local_path(sha256)
    if local is not None:
        tree.link(relative, local)
        return
    data = _pointer(sha256, size)
    if tree.read(relative) != data:
        tree.write(relative, data)


def place_small_blob(tree: Tree, relative: str, blobs: BlobStore, sha256: str, limit: int) -> int:
    """Put a small blob (core metadata) at ``relative`` as its own bytes: linked on
    the filesystem, copied out of an object store once (a tree file that already
    holds those bytes is kept, so a re-render costs no read). Its size;
    :class:`MissingBlob` if the store does not hold it."""
    local = blobs.local_path(sha256)
    if local is not None:
        try:
            size = local.stat().st_size
        except FileNotFoundError:
            raise MissingBlob(sha256) from None
        tree.link(relative, local)
        return size
    present = tree.read(relative)
    if present is not None and hashlib.sha256(present).hexdigest() == sha256:
        return len(present)
    data = blobs.read_bytes(sha256, limit)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BlobCorrupt(f"blob {sha256} in the store does not hash to its name")
    tree.write(relative, data)
    return len(data)
