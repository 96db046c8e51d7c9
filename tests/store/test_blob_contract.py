"""The blob-store contract, on the filesystem and on a real S3 server (SeaweedFS).

What every caller relies on: content-addressed puts that return only once stored,
reads whole, bounded and by range, reuse, iteration and fsck's reap; a source
whose bytes are not those named stores nothing. On S3 also: a stored object is
never overwritten (conditional puts), and a body cut mid-stream leaves no object.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3 import S3Server
from tilsit.store import FilesystemBlobStore
from tilsit.store.blobs import (
    BlobCorrupt,
    BlobStore,
    BlobStoreUnavailable,
    BlobTooLarge,
    MissingBlob,
)
from tilsit.store.s3 import S3BlobStore, S3Config, make_client

MiB = 1024 * 1024
# Small enough that a test file of a few MiB goes in parts (S3's least part is 5 MiB).
PART = 5 * MiB


def s3_store(server: S3Server, bucket: str, **config: str) -> S3BlobStore:
    settings = {
        "bucket": bucket,
        "prefix": "blobs/",
        "endpoint_url": server.endpoint_url,
        "region": server.region,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
        **config,
    }
    return S3BlobStore(
        make_client(S3Config(**settings)),
        settings["bucket"],
        settings["prefix"],
        multipart_threshold=PART,
        part_size=PART,
    )


@pytest.fixture(params=["fs", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "fs":
        yield FilesystemBlobStore(tmp_path / "blobs", tmp_path / "tmp")
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        yield s3_store(server, request.getfixturevalue("s3_bucket"))


def source(tmp_path: Path, data: bytes) -> Path:
    # The filesystem store needs its source on its own filesystem (it renames it).
    (tmp_path / "tmp").mkdir(exist_ok=True)
    path = tmp_path / "tmp" / f"upload-{hashlib.sha1(data).hexdigest()}"  # noqa: S324
    path.write_bytes(data)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_bytes_then_read_every_way(store: BlobStore) -> None:
    data = bytes(range(256)) * 40
    digest = store.put_bytes(data)
    assert digest == sha(data)
    assert store.exists(digest)
    assert store.size(digest) == len(data)
    assert store.read_bytes(digest, limit=len(data)) == data
    assert b"".join(store.open_range(digest)) == data
    assert b"".join(store.open_range(digest, 100, 356)) == data[100:356]
    assert b"".join(store.open_range(digest, len(data) - 1)) == data[-1:]
    assert b"".join(store.open_range(digest, 7, 7)) == b""
    assert list(store) == [digest]
    assert store.stored_at(digest) > time.time() - 60
    with store.local_copy(digest) as path:
        assert path.read_bytes() == data
    assert path.exists() == (store.local_path(digest) is not None)  # a copy is removed


def test_bounded_read_refuses_a_larger_blob(store: BlobStore) -> None:
    digest = store.put_bytes(b"x" * 1000)
    with pytest.raises(BlobTooLarge, match="larger than 999 bytes"):
        store.read_bytes(digest, limit=999)


def test_missing_blob_is_named(store: BlobStore) -> None:
    absent = sha(b"never stored")
    assert not store.exists(absent)
    for read in (
        lambda: store.size(absent),
        lambda: store.read_bytes(absent, 10),
        lambda: store.open_range(absent),
        lambda: store.open_range(absent, 3, 3),
        lambda: store.stored_at(absent),
        lambda: store.local_copy(absent).__enter__(),
    ):
        with pytest.raises(MissingBlob):
            read()


def test_put_file_consumes_the_source_and_reuses(store: BlobStore, tmp_path: Path) -> None:
    data = b"a wheel's bytes" * 100
    first = source(tmp_path, data)
    store.put_file(first, sha(data))
    assert not first.exists()
    again = source(tmp_path, data)
    store.put_file(again, sha(data))
    assert not again.exists()
    assert list(store) == [sha(data)]
    assert store.read_bytes(sha(data), len(data)) == data


def test_large_file_streams_in_parts(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(2 * PART + 12345)
    path = source(tmp_path, data)
    store.put_file(path, sha(data))
    assert store.size(sha(data)) == len(data)
    assert hashlib.sha256(b"".join(store.open_range(sha(data)))).hexdigest() == sha(data)
    middle = b"".join(store.open_range(sha(data), PART - 10, PART + 10))
    assert middle == data[PART - 10 : PART + 10]


@pytest.mark.parametrize("size", [1000, 2 * PART + 1], ids=["single", "multipart"])
def test_a_corrupt_source_stores_nothing(store: BlobStore, tmp_path: Path, size: int) -> None:
    claimed = sha(b"what the caller hashed")
    path = source(tmp_path, os.urandom(size))
    with pytest.raises(BlobCorrupt, match="not stored"):
        store.put_file(path, claimed)
    assert not store.exists(claimed)
    assert list(store) == []
    assert not path.exists()  # consumed, as a stored one is


def test_reap_takes_old_orphans_and_keeps_fresh_or_reused(store: BlobStore) -> None:
    old = store.put_bytes(b"orphan")
    young = store.put_bytes(b"young")
    # A cutoff after both puts: both are older than the grace period.
    time.sleep(1.1)
    cutoff = time.time()
    time.sleep(1.1)
    assert store.put_bytes(b"young") == young  # reused after the cutoff: in use again
    assert store.reap(old, cutoff)
    assert not store.exists(old)
    assert not store.reap(young, cutoff)
    assert store.exists(young)
    assert not store.reap(old, cutoff)  # already gone
    assert list(store) == [young]
    store.delete(young)
    assert list(store) == []


def test_iteration_is_every_blob_once(store: BlobStore) -> None:
    stored = {store.put_bytes(f"blob {n}".encode()) for n in range(30)}
    listed = list(store)
    assert sorted(listed) == sorted(stored)


# S3 only ---------------------------------------------------------------------------


@pytest.fixture
def s3(s3_server: S3Server, s3_bucket: str) -> S3BlobStore:
    return s3_store(s3_server, s3_bucket)


def test_keys_are_content_addressed_under_the_prefix(s3: S3BlobStore) -> None:
    digest = s3.put_bytes(b"hello")
    keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert f"blobs/{digest[:2]}/{digest[2:4]}/{digest}" in keys
    assert s3.local_path(digest) is None


def test_a_stored_object_is_never_overwritten(s3: S3BlobStore, s3_server: S3Server) -> None:
    from botocore.exceptions import ClientError

    digest = s3.put_bytes(b"the real bytes")
    raw = s3_server.client()
    with pytest.raises(ClientError, match="PreconditionFailed"):
        raw.put_object(  # type: ignore[attr-defined]
            Bucket=s3.bucket, Key=s3.key(digest), Body=b"other bytes", IfNoneMatch="*"
        )
    assert s3.read_bytes(digest, 100) == b"the real bytes"
    # A key already holding other bytes (put there by hand, bypassing the store): the
    # store's own conditional put is refused by the server and the object is kept as it
    # is (fsck --verify is what names it corrupt), for a single put and a multipart one.
    for data in (b"named bytes", os.urandom(PART + 1)):
        squatted = sha(data)
        raw.put_object(Bucket=s3.bucket, Key=s3.key(squatted), Body=b"squatter")  # type: ignore[attr-defined]
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"tilsit-s3-test-{squatted}"
        path.write_bytes(data)
        with open(path, "rb") as fh:
            s3.put_stream(fh, len(data), squatted)
        path.unlink()
        assert s3.read_bytes(squatted, 100) == b"squatter"
    # No multipart upload is left open by a refused completion.
    assert raw.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", [1000, 2 * PART + 1], ids=["single", "multipart"])
def test_a_body_cut_mid_stream_leaves_no_object(
    s3: S3BlobStore, s3_server: S3Server, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    path = tmp_path / "short"
    path.write_bytes(data[: size // 2 + 7])
    with open(path, "rb") as fh, pytest.raises(BlobCorrupt, match="the source ended"):
        s3.put_stream(fh, size, sha(data))
    assert not s3.exists(sha(data))
    assert list(s3) == []
    raw = s3_server.client()
    assert raw.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []  # type: ignore[attr-defined]


def test_errors_from_s3_are_named(s3_server: S3Server, s3_bucket: str) -> None:
    missing = s3_store(s3_server, "no-such-bucket-here")
    with pytest.raises(BlobStoreUnavailable, match="bucket does not exist"):
        missing.put_bytes(b"x")
    wrong = s3_store(s3_server, s3_bucket, secret_access_key="not-the-secret")
    with pytest.raises(BlobStoreUnavailable, match="secret access key is wrong"):
        wrong.put_bytes(b"x")
    closed = s3_store(s3_server, s3_bucket, endpoint_url="http://127.0.0.1:9")
    with pytest.raises(BlobStoreUnavailable, match="cannot mark in use blob"):
        closed.put_bytes(b"x")


def test_settings_choose_and_build_the_s3_store(s3_server: S3Server, s3_bucket: str) -> None:
    from tilsit.config import Settings
    from tilsit.instance import open_blob_store, s3_blob_store
    from tilsit.operator import ConfigError

    with pytest.raises(ConfigError, match="needs s3_bucket"):
        s3_blob_store(Settings(blob_store="s3"))
    # A presigned URL lives at most SigV4's seven days.
    with pytest.raises(ConfigError, match="s3_url_expiry must be 1 to 604800 seconds"):
        open_blob_store(Settings(blob_store="s3", s3_bucket=s3_bucket, s3_url_expiry=0))
    store = s3_blob_store(
        Settings(
            blob_store="s3",
            s3_bucket=s3_bucket,
            s3_prefix="/tenant/blobs/",
            s3_endpoint_url=s3_server.endpoint_url,
            s3_region=s3_server.region,
            s3_access_key_id=s3_server.access_key,
            s3_secret_access_key=s3_server.secret_key,
        )
    )
    digest = store.put_bytes(b"by settings")
    assert store.key(digest).startswith("tenant/blobs/")
    assert list(store) == [digest]


def test_a_presigned_url_reads_the_blob_without_credentials_and_expires(s3: S3BlobStore) -> None:
    import httpx

    data = os.urandom(4096)
    digest = s3.put_bytes(data)
    url = s3.presigned_url(digest, "demo-1.0-py3-none-any.whl", expires=2)
    whole = httpx.get(url, timeout=30)
    assert whole.status_code == 200 and whole.content == data
    assert "demo-1.0-py3-none-any.whl" in whole.headers["content-disposition"]
    part = httpx.get(url, headers={"Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206 and part.content == data[10:20]
    assert httpx.get(url.replace(digest, sha(b"other")), timeout=30).status_code == 403
    time.sleep(3)
    assert httpx.get(url, timeout=30).status_code == 403
