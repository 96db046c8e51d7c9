"""Blob stores: immutable, content-addressed by sha256, behind one small interface."""

from tilsit.store.blobs import BlobStore, MissingBlob
from tilsit.store.fs import FilesystemBlobStore, fsync_dir

__all__ = ["BlobStore", "FilesystemBlobStore", "MissingBlob", "fsync_dir"]
