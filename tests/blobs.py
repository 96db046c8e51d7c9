"""Reading what the tree serves, on either blob store (TILSIT_TEST_BLOBS).

On the filesystem a file's tree path is its blob; on S3 it is a pointer
(tilsit.store.blobfile) and the bytes are in the bucket. Tests that check the
tree's files read them through here, so they check the same bytes on both.
"""

from __future__ import annotations

from pathlib import Path

from tilsit.config import Settings
from tilsit.instance import open_blob_store
from tilsit.store.blobfile import POINTER_MAX, read_pointer
from tilsit.store.blobs import BlobStore


def served_bytes(path: Path, blobs: BlobStore) -> bytes:
    """The bytes a client gets for the tree file at ``path``."""
    data = path.read_bytes()
    pointer = read_pointer(data) if len(data) <= POINTER_MAX else None
    if pointer is None:
        return data
    return b"".join(blobs.open_range(pointer.sha256))


def blob_stored(settings: Settings, sha256: str) -> bool:
    """Whether the instance's blob store holds ``sha256``."""
    return open_blob_store(settings).exists(sha256)
