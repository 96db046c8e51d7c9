"""Blob-store failures counted by store kind, operation and error class; the errors pass on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.s3 import S3Server
from tests.store.test_blob_contract import s3_store
from tilsit.store import FilesystemBlobStore
from tilsit.store.blobs import BlobCorrupt, BlobStoreUnavailable, MissingBlob
from tilsit.store.counted import BLOB_ERRORS, counted, unwrapped
from tilsit.web.metrics import Metrics

ABSENT = "0" * 64


_READ = CollectorRegistry()
_READ.register(BLOB_ERRORS)


def errors(store: str, operation: str, error: str) -> float:
    labels = {"store": store, "operation": operation, "error": error}
    return _READ.get_sample_value("tilsit_blob_store_errors_total", labels) or 0.0


def test_failures_counted_and_raised(tmp_path: Path) -> None:
    store = counted(FilesystemBlobStore(tmp_path / "blobs", tmp_path / "tmp"), "fs")
    before = {
        key: errors("fs", *key)
        for key in (("head", "MissingBlob"), ("get", "MissingBlob"), ("put", "BlobCorrupt"))
    }
    with pytest.raises(MissingBlob):
        store.size(ABSENT)
    with pytest.raises(MissingBlob):
        store.open_range(ABSENT)  # before the first chunk, as the store itself raises it
    with pytest.raises(MissingBlob), store.local_copy(ABSENT):
        pass
    source = tmp_path / "tmp" / "upload"
    source.write_bytes(b"not what the name says")
    with pytest.raises(BlobCorrupt):
        store.put_file(source, hashlib.sha256(b"other bytes").hexdigest())
    assert errors("fs", "head", "MissingBlob") - before["head", "MissingBlob"] == 1
    assert errors("fs", "get", "MissingBlob") - before["get", "MissingBlob"] == 2
    assert errors("fs", "put", "BlobCorrupt") - before["put", "BlobCorrupt"] == 1
    assert not store.exists(hashlib.sha256(b"other bytes").hexdigest())  # nothing stored


def test_success_and_callers_errors_not_counted(tmp_path: Path) -> None:
    inner = FilesystemBlobStore(tmp_path / "blobs", tmp_path / "tmp")
    store = counted(inner, "fs")
    # What the store is, for a caller that asks (backup copies a filesystem store's files).
    assert unwrapped(store) is inner and unwrapped(inner) is inner
    total = sum(
        s.value for m in BLOB_ERRORS.collect() for s in m.samples if s.name.endswith("_total")
    )
    digest = store.put_bytes(b"stored")
    assert b"".join(store.open_range(digest, 1, 4)) == b"tor"
    assert store.read_bytes(digest, 10) == b"stored" and store.size(digest) == 6
    assert list(store) == [digest]
    # An error in the caller's block is the caller's, not the store's.
    with pytest.raises(KeyError), store.local_copy(digest) as path:
        assert path.read_bytes() == b"stored"
        raise KeyError("the caller's")
    after = sum(
        s.value for m in BLOB_ERRORS.collect() for s in m.samples if s.name.endswith("_total")
    )
    assert after == total


def test_s3_unreachable_counted(s3_server: S3Server, s3_bucket: str) -> None:
    store = counted(s3_store(s3_server, s3_bucket, endpoint_url="http://127.0.0.1:9"), "s3")
    before = errors("s3", "put", "BlobStoreUnavailable")
    with pytest.raises(BlobStoreUnavailable):
        store.put_bytes(b"x")
    assert errors("s3", "put", "BlobStoreUnavailable") - before == 1
    # On a reachable store, a missing blob is named so.
    reachable = counted(s3_store(s3_server, s3_bucket), "s3")
    missing = errors("s3", "head", "MissingBlob")
    with pytest.raises(MissingBlob):
        reachable.size(ABSENT)
    assert errors("s3", "head", "MissingBlob") - missing == 1


def test_scraped(tmp_path: Path) -> None:
    store = counted(FilesystemBlobStore(tmp_path / "blobs", tmp_path / "tmp"), "fs")
    with pytest.raises(MissingBlob):
        store.stored_at(ABSENT)
    metrics = Metrics("loopback", "", lambda: {})
    text = generate_latest(metrics.scraped).decode()
    found = {
        tuple(sorted(sample.labels.items()))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "tilsit_blob_store_errors_total"
    }
    assert (("error", "MissingBlob"), ("operation", "head"), ("store", "fs")) in found
