"""Storage: blob stores (immutable, content-addressed by sha256, behind one small
interface) and the static tree's atomic writer (:mod:`tilsit.store.tree`)."""

from tilsit.store.blobs import BlobStore, MissingBlob
from tilsit.store.fs import FilesystemBlobStore, fsync_dir

__all__ = ["BlobStore", "FilesystemBlobStore", "MissingBlob", "fsync_dir"]
