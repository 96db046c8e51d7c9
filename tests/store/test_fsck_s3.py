"""``tilsit fsck``'s blob check on S3: missing, corrupt and orphaned blobs in a real bucket.

Uploads go through the upload's own write path (``store_upload``) into an S3 store,
so their rows name blobs in the bucket; then the bucket is damaged by hand, with
the raw client, as an operator's mistake or a failing disk would.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from tests.builders import make_wheel
from tests.s3 import S3Server
from tests.store.test_blob_contract import s3_store
from tests.store.test_fsck_live import _form
from tilsit.auth.tokens import find_token
from tilsit.index.blobcheck import check_blobs
from tilsit.index.manage import get_index
from tilsit.index.upload import check_form, store_upload, uploader_for
from tilsit.instance import Instance
from tilsit.store.s3 import S3BlobStore


def _upload(instance: Instance, blobs: S3BlobStore, token: str, name: str) -> tuple[str, str]:
    wheel = make_wheel(name, "1.0")
    checked = check_form(_form(instance.settings, wheel.data, wheel.filename))
    with instance.db.write() as session:
        index = get_index(session, "main")
        uploader = uploader_for(session, find_token(session, token))
        assert store_upload(session, blobs, index, uploader, checked).created
    return wheel.sha256, wheel.filename


def test_fsck_finds_missing_corrupt_and_orphaned_blobs_in_s3(
    instance: Instance, token: str, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    blobs = s3_store(s3_server, s3_bucket)
    intact, _ = _upload(instance, blobs, token, "intact")
    lost, lost_name = _upload(instance, blobs, token, "lost")
    damaged, damaged_name = _upload(instance, blobs, token, "damaged")
    assert {intact, lost, damaged} <= set(blobs)
    orphan = blobs.put_bytes(b"a killed upload's blob, never named")
    raw = s3_server.client()
    raw.delete_object(Bucket=s3_bucket, Key=blobs.key(lost))  # type: ignore[attr-defined]
    raw.put_object(Bucket=s3_bucket, Key=blobs.key(damaged), Body=b"rot")  # type: ignore[attr-defined]

    # A cutoff before the puts: the orphan is younger than the grace period, and kept.
    lines: list[str] = []
    result = check_blobs(
        instance.db, blobs, time.time() - 3600, dry_run=False, verify=True, echo=lines.append
    )
    text = "\n".join(lines)
    assert f"MISSING blob {lost} for {lost_name}" in text, text
    assert f"CORRUPT blob {damaged} for {damaged_name}" in text, text
    assert f"orphan blob {orphan} is younger than the grace period; kept" in text, text
    assert intact not in text, text
    assert result.problems == 2 and result.reaped == 0
    assert blobs.exists(orphan)

    # Once older than the grace period, the orphan is reaped, in S3 as on disk.
    time.sleep(1.1)
    lines.clear()
    result = check_blobs(
        instance.db, blobs, time.time(), dry_run=False, verify=True, echo=lines.append
    )
    assert f"reaped orphan blob {orphan}" in lines, lines
    assert result.reaped == 1 and result.problems == 2
    assert not blobs.exists(orphan)
    assert blobs.exists(intact)
    assert hashlib.sha256(b"".join(blobs.open_range(intact))).hexdigest() == intact
