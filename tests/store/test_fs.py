import hashlib
from pathlib import Path

import pytest

from tilsit.store import FilesystemBlobStore


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs", tmp_path / "tmp")


def test_put_bytes_is_content_addressed(store: FilesystemBlobStore) -> None:
    sha = store.put_bytes(b"hello")
    assert sha == hashlib.sha256(b"hello").hexdigest()
    assert store.path(sha).read_bytes() == b"hello"
    assert store.path(sha).relative_to(store.root).parts == (sha[:2], sha[2:4], sha)
    assert store.put_bytes(b"hello") == sha
    assert list(store) == [sha]
    assert list((store.tmp).iterdir()) == []


def test_put_file_consumes_the_source(store: FilesystemBlobStore, tmp_path: Path) -> None:
    source = store.tmp / "upload"
    source.write_bytes(b"data")
    sha = hashlib.sha256(b"data").hexdigest()
    store.put_file(source, sha)
    assert not source.exists()
    assert store.exists(sha)
    # Blobs are immutable: read-only on disk.
    assert store.path(sha).stat().st_mode & 0o222 == 0
    again = store.tmp / "again"
    again.write_bytes(b"data")
    store.put_file(again, sha)
    assert not again.exists()


def test_rejects_bad_digest(store: FilesystemBlobStore) -> None:
    with pytest.raises(ValueError, match="sha256"):
        store.path("../../etc/passwd")
