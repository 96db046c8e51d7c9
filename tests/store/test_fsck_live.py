"""``tilsit fsck`` beside live writers: it never reaps a blob an upload is committing,
and it (and ``serve`` start-up) reaps the temp files of killed processes, but only old ones.

The upload is paused between storing its blob and committing its row the way the
server runs it: the test runs the upload's own write path (``Database.write`` and
``store_upload``, as ``web/upload.py`` does) and keeps its transaction, and so the
writer lock, open while ``tilsit fsck --grace 0`` runs as a separate process.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import LiveServer, run_cli, settings_env
from tilsit.auth.tokens import find_token
from tilsit.config import Settings
from tilsit.index.manage import get_index
from tilsit.index.upload import Digests, UploadForm, check_form, store_upload, uploader_for
from tilsit.instance import Instance, open_instance
from tilsit.store.leftovers import reap_leftovers
from tilsit.store.tree import file_path

TWO_HOURS = 2 * 3600


@pytest.fixture
def writer(live_server: LiveServer) -> Iterator[Instance]:
    """An instance on the live server's data directory, for the test's own writes."""
    instance = open_instance(live_server.settings, migrate=False)
    yield instance
    instance.close()


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _form(settings: Settings, data: bytes, filename: str) -> UploadForm:
    """The form as the web layer hands it over: the content streamed to a temp file."""
    content = settings.tmp_dir / "upload-test"
    content.write_bytes(data)
    digests = Digests(
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        blake2_256=hashlib.blake2b(data, digest_size=32).hexdigest(),
    )
    name, version = filename.split("-")[:2]
    fields = {
        ":action": ["file_upload"],
        "protocol_version": ["1"],
        "name": [name],
        "version": [version],
        "filetype": ["bdist_wheel"],
        "sha256_digest": [digests.sha256],
    }
    return UploadForm(fields, content, filename, digests)


def _fsck(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tilsit", "fsck", *args, "--data", str(settings.data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **settings_env(settings)},
    )


def _wait_until_blocked_on_flock(process: subprocess.Popen[str]) -> None:
    """Until ``process`` waits for a flock (a "->" line of /proc/locks names its pid)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if fields[1:3] == ["->", "FLOCK"] and fields[5] == str(process.pid):
                return
        if process.poll() is not None:
            raise AssertionError(f"fsck ended early: {process.communicate()[0]}")
        time.sleep(0.05)
    raise AssertionError("fsck never reached the render lock")


def test_fsck_never_reaps_the_blob_of_an_upload_that_is_committing(
    live_server: LiveServer, writer: Instance
) -> None:
    settings = live_server.settings
    secret = live_server.token("alice")
    wheel = make_wheel("retried", "1.0")
    # A killed upload stored the blob, never its row: an orphan, two hours old.
    writer.blobs.put_bytes(wheel.data)
    blob = writer.blobs.path(wheel.sha256)
    _age(blob, TWO_HOURS)

    checked = check_form(_form(settings, wheel.data, wheel.filename))
    # fsck opens the instance (a short write) and then takes the render lock to catch
    # up, before it reads the rows: held here, it keeps fsck there until the upload
    # below holds the writer lock.
    render_lock = os.open(settings.data / "render.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(render_lock, fcntl.LOCK_EX)
    try:
        fsck = _fsck(settings, "--grace", "0")
        _wait_until_blocked_on_flock(fsck)
        before = time.time()
        output: list[str] = []
        # The retried upload, paused after storing its blob, before its row commits.
        with writer.db.write() as session:
            index = get_index(session, "main")
            uploader = uploader_for(session, find_token(session, secret))
            result = store_upload(session, writer.blobs, index, uploader, checked)
            assert result.created
            # put_file found the blob stored and marked it in use.
            assert blob.stat().st_mtime >= before - 1
            os.close(render_lock)  # fsck reads the rows (without this one) now
            render_lock = -1
            assert fsck.stdout is not None
            # Until fsck wants the writer lock to reap, or has finished without it.
            for line in fsck.stdout:
                output.append(line)
                if "under the writer lock" in line:
                    break
    finally:
        if render_lock >= 0:
            os.close(render_lock)
    rest, _ = fsck.communicate(timeout=120)
    output.append(rest)
    text = "".join(output)
    assert fsck.returncode == 0, text
    assert f"blob {wheel.sha256} is now named by {wheel.filename}; kept" in text, text
    assert blob.is_file(), text

    writer.renderer.catch_up()
    url = f"{live_server.url}/{file_path(wheel.sha256, wheel.filename)}"
    downloaded = httpx.get(url, timeout=30)
    assert downloaded.status_code == 200 and downloaded.content == wheel.data
    verified = run_cli(settings, "fsck", "--verify", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "0 problem(s)" in verified.stdout


def test_reaping_puts_back_a_blob_stored_again_since_fsck_began(instance: Instance) -> None:
    """The mirror path stores blobs outside the writer lock, before its rows: a blob put
    (again) after fsck's cutoff survives the reap, and one reaped is stored anew."""
    blobs = instance.blobs
    sha256 = blobs.put_bytes(b"fetched by a mirror")
    _age(blobs.path(sha256), TWO_HOURS)
    cutoff = time.time() - 60
    assert blobs.put_bytes(b"fetched by a mirror") == sha256  # reused: marked in use
    assert not blobs.reap(sha256, cutoff)
    assert blobs.path(sha256).read_bytes() == b"fetched by a mirror"
    assert list(instance.settings.tmp_dir.iterdir()) == []
    _age(blobs.path(sha256), TWO_HOURS)
    assert blobs.reap(sha256, cutoff)
    assert not blobs.exists(sha256)
    assert blobs.put_bytes(b"fetched by a mirror") == sha256
    assert blobs.path(sha256).read_bytes() == b"fetched by a mirror"


def test_old_temp_files_are_reaped_and_fresh_ones_kept(
    settings: Settings, instance: Instance, tmp_path: Path
) -> None:
    tmp = settings.tmp_dir
    old = ["upload-a1b2", "blob-c3d4", "page-e5f6", "link-1-abcd", "mirror-main-x", "proxy-y"]
    for name in [*old, "upload-fresh", "page-fresh"]:
        (tmp / name).write_bytes(b"partial")
    for name in old:
        _age(tmp / name, TWO_HOURS)

    dry = run_cli(settings, "fsck", "--dry-run")
    assert f"{tmp / 'upload-a1b2'} left by a killed process (would reap)" in dry.stdout
    assert len(list(tmp.iterdir())) == len(old) + 2

    done = run_cli(settings, "fsck")
    assert f"{len(old)} temp file(s) reaped" in done.stdout, done.stdout
    assert sorted(p.name for p in tmp.iterdir()) == ["page-fresh", "upload-fresh"]
    # With no grace (nothing else writing), the rest go too.
    assert reap_leftovers(tmp, 0) == ["page-fresh", "upload-fresh"]
    assert list(tmp.iterdir()) == []


def test_serve_reaps_old_temp_files_at_start(settings: Settings, tmp_path: Path) -> None:
    from tests.conftest import start_server, stop

    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    (settings.tmp_dir / "page-killed").write_bytes(b"partial")
    _age(settings.tmp_dir / "page-killed", TWO_HOURS)
    (settings.tmp_dir / "upload-in-flight").write_bytes(b"partial")
    server = start_server(settings, tmp_path / "server.log")
    try:
        # Only what the test planted: the server's own pages in progress (start-up renders
        # the project lists) may be there too.
        left = {p.name for p in settings.tmp_dir.iterdir()}
        assert "page-killed" not in left
        assert "upload-in-flight" in left
    finally:
        stop(server)
