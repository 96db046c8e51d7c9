"""A server whose blobs are in S3 serves its files end to end (``blob_store = "s3"``).

A real ``tilsit serve`` on a real SeaweedFS bucket: twine uploads, pip installs, and
``tilsit verify`` checks every file and signature; the tree holds pointers, never
the bytes; Range, HEAD and 304 are answered as for a file on disk; the redirect
mode hands out a presigned URL that reads the same bytes; a blob lost from the
bucket is a 500 that says so, never a wrong body.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.builders import make_sdist, make_wheel
from tests.conftest import LiveServer, start_server, stop, stop_process
from tests.installs import pip_install
from tests.readpath.conftest import need_nginx, start_nginx
from tests.s3 import S3Server
from tests.trust.signed import run_verify
from tilsit.config import Settings, load_settings
from tilsit.store.blobfile import read_pointer

_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def _settings(
    tmp_path: Path, database_url: str, server: S3Server, bucket: str, **extra: object
) -> Settings:
    return load_settings(
        overrides={
            "data": tmp_path / "data",
            "database_url": database_url,
            "blob_store": "s3",
            "s3_bucket": bucket,
            "s3_endpoint_url": server.endpoint_url,
            "s3_region": server.region,
            "s3_access_key_id": server.access_key,
            "s3_secret_access_key": server.secret_key,
            **extra,
        },
        environ={},
    )


def _token(live: LiveServer) -> str:
    return live.token("alice")


def _twine(tmp_path: Path, url: str, token: str, *paths: Path) -> None:
    twine = Path(".tools/twine/bin/twine")
    if not twine.is_file():
        pytest.fail(f"twine is not installed at {twine} (bash scripts/install-clients)")
    done = subprocess.run(
        [str(twine), "upload", "--non-interactive", "--disable-progress-bar"]
        + ["--repository-url", f"{url}/legacy/", "-u", "__token__", "-p", token]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_files_in_s3_are_uploaded_installed_and_verified(
    tmp_path: Path, database_url: str, s3_server: S3Server, s3_bucket: str
) -> None:
    settings = _settings(tmp_path, database_url, s3_server, s3_bucket)
    live = start_server(settings, tmp_path / "server.log")
    try:
        wheel = make_wheel("skyward", "1.0")
        sdist = make_sdist("skyward", "1.0")
        dists = tmp_path / "dists"
        dists.mkdir()
        for dist in (wheel, sdist):
            (dists / dist.filename).write_bytes(dist.data)
        _twine(tmp_path, live.url, _token(live), *sorted(dists.iterdir()))

        # The blobs are in the bucket, none on this disk; the tree holds pointers.
        assert not any(p.is_file() for p in settings.blob_dir.rglob("*"))
        raw = s3_server.client()
        keys = {
            o["Key"]
            for o in raw.list_objects_v2(Bucket=s3_bucket)["Contents"]  # type: ignore[attr-defined]
        }
        assert f"blobs/{wheel.sha256[:2]}/{wheel.sha256[2:4]}/{wheel.sha256}" in keys, keys
        with httpx.Client(base_url=live.url, timeout=30) as http:
            page = http.get("/simple/skyward/", headers=_JSON).json()
            files = {f["filename"]: f for f in page["files"]}
            assert set(files) == {wheel.filename, sdist.filename}
            path = urlsplit(files[wheel.filename]["url"]).path
            pointer = read_pointer((settings.tree_dir / path.lstrip("/")).read_bytes())
            assert pointer is not None and pointer.sha256 == wheel.sha256
            assert pointer.size == len(wheel.data)

            # The whole file, a range, HEAD and a revalidation, as from disk.
            whole = http.get(path)
            assert whole.status_code == 200 and whole.content == wheel.data
            etag = whole.headers["etag"]
            assert etag == f'"{wheel.sha256}"'
            part = http.get(path, headers={"Range": "bytes=10-19"})
            assert part.status_code == 206 and part.content == wheel.data[10:20]
            assert part.headers["content-range"] == f"bytes 10-19/{len(wheel.data)}"
            tail = http.get(path, headers={"Range": "bytes=-7"})
            assert tail.content == wheel.data[-7:]
            beyond = http.get(path, headers={"Range": f"bytes={len(wheel.data)}-"})
            assert beyond.status_code == 416
            head = http.head(path)
            assert head.status_code == 200
            assert head.headers["content-length"] == str(len(wheel.data))
            assert http.get(path, headers={"If-None-Match": etag}).status_code == 304
            # Core metadata is bytes in the tree, served like a page.
            metadata = http.get(path + ".metadata")
            assert metadata.status_code == 200
            assert (
                hashlib.sha256(metadata.content).hexdigest()
                == (files[wheel.filename]["core-metadata"]["sha256"])
            )

        # pip installs from it; tilsit verify checks every target against the signed root.
        target = tmp_path / "installed"
        pip = pip_install("--index-url", f"{live.url}/simple/", "skyward==1.0", target=target)
        assert pip.returncode == 0, pip.stdout + pip.stderr
        root = tmp_path / "1.root.json"
        shutil.copyfile(settings.tree_dir / "main" / "tuf" / "1.root.json", root)
        verify = run_verify(f"{live.url}/main/", "--root", str(root))
        assert verify.returncode == 0, verify.stdout + verify.stderr

        # A blob lost from the bucket: a 500 naming it, never another body.
        sha = sdist.sha256
        raw.delete_object(Bucket=s3_bucket, Key=f"blobs/{sha[:2]}/{sha[2:4]}/{sha}")  # type: ignore[attr-defined]
        lost = httpx.get(live.url + urlsplit(files[sdist.filename]["url"]).path, timeout=30)
        assert lost.status_code == 500
        assert f"({sdist.sha256}) is missing from the blob store" in lost.text
        # ... and counted for the operator (store/counted.py, docs/metrics.md).
        scrape = httpx.get(f"{live.url}/_/metrics", timeout=30).text
        assert (
            'tilsit_blob_store_errors_total{error="MissingBlob",operation="get",store="s3"} 1.0'
            in scrape
        ), [line for line in scrape.splitlines() if "blob_store" in line]
    finally:
        stop(live)


def test_redirect_mode_hands_out_a_presigned_url_of_the_same_bytes(
    tmp_path: Path, database_url: str, s3_server: S3Server, s3_bucket: str
) -> None:
    settings = _settings(
        tmp_path, database_url, s3_server, s3_bucket, s3_serve_files="redirect", s3_url_expiry=60
    )
    live = start_server(settings, tmp_path / "server.log")
    try:
        wheel = make_wheel("leaper", "2.0")
        (tmp_path / wheel.filename).write_bytes(wheel.data)
        _twine(tmp_path, live.url, _token(live), tmp_path / wheel.filename)
        with httpx.Client(base_url=live.url, timeout=30) as http:
            [file] = http.get("/simple/leaper/", headers=_JSON).json()["files"]
            path = urlsplit(file["url"]).path
            answer = http.get(path)
            assert answer.status_code == 302
            assert answer.headers["cache-control"] == "public, max-age=30"
            location = answer.headers["location"]
            assert location.startswith(s3_server.endpoint_url)
            assert "X-Amz-Signature=" in location
            # Read without credentials, as a client following the redirect does.
            body = httpx.get(location, timeout=30)
            assert body.status_code == 200 and body.content == wheel.data
            assert http.get(path, headers={"If-None-Match": f'"{wheel.sha256}"'}).status_code == 304
        # pip follows the redirect and checks the hash.
        target = tmp_path / "installed"
        pip = pip_install("--index-url", f"{live.url}/simple/", "leaper==2.0", target=target)
        assert pip.returncode == 0, pip.stdout + pip.stderr
        # The redirect is the download: counted as one (flushed every few seconds).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            recent = httpx.get(f"{live.url}/_/stats/main/leaper/recent", timeout=10).json()
            if recent["data"]["last_day"] >= 1:
                break
            time.sleep(0.5)
        assert recent["data"]["last_day"] >= 1, recent
    finally:
        stop(live)


def test_nginx_serves_pages_from_the_tree_and_sends_files_to_tilsit(
    tmp_path: Path, database_url: str, s3_server: S3Server, s3_bucket: str
) -> None:
    need_nginx()
    settings = _settings(tmp_path, database_url, s3_server, s3_bucket)
    live = start_server(settings, tmp_path / "server.log")
    nginx = None
    try:
        wheel = make_wheel("fronted", "3.0")
        (tmp_path / wheel.filename).write_bytes(wheel.data)
        _twine(tmp_path, live.url, _token(live), tmp_path / wheel.filename)
        # As `tilsit nginx-config` prints it for this data directory.
        printed = live.cli("nginx-config", "--upstream", live.url.removeprefix("http://")).stdout
        assert "# The blob is in the object store: tilsit answers." in printed
        nginx, url = start_nginx(
            settings.tree_dir,
            live.url.removeprefix("http://"),
            tmp_path / "nginx",
            files_from_tilsit=True,
        )
        with httpx.Client(base_url=url, timeout=30) as http:
            page = http.get("/simple/fronted/", headers=_JSON)
            assert page.status_code == 200
            [file] = page.json()["files"]
            path = urlsplit(file["url"]).path
            whole = http.get(path)
            assert whole.status_code == 200 and whole.content == wheel.data
            assert whole.headers["etag"] == f'"{wheel.sha256}"'
            part = http.get(path, headers={"Range": "bytes=0-3"})
            assert part.status_code == 206 and part.content == wheel.data[:4]
            metadata = http.get(path + ".metadata")
            assert metadata.status_code == 200
            assert hashlib.sha256(metadata.content).hexdigest() == file["core-metadata"]["sha256"]
        # Without the object-store locations nginx would hand out the pointer itself.
        assert read_pointer((settings.tree_dir / path.lstrip("/")).read_bytes()) is not None
    finally:
        if nginx is not None:
            stop_process(nginx)
        stop(live)
