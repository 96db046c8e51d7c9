"""``tilsit backup`` and ``tilsit restore`` on a live server, with an upload landing after
the database copy; the restored host serves every file with its hash and verifies against the
origin's first root; a corrupt or truncated backup is refused and leaves the target alone."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from tests.backup_checks import assert_restored_serves
from tests.builders import make_wheel
from tests.conftest import LiveServer, create_database, run_cli, same_blobs, start_server, stop
from tests.postgres import find_bin
from tests.uploads import upload
from tilsit.config import Settings, load_settings


@pytest.fixture
def origin(tmp_path: Path, settings: Settings) -> Iterator[LiveServer]:
    server = start_server(settings, tmp_path / "origin.log")
    yield server
    stop(server)


def _upload(server: LiveServer, token: str, name: str, version: str) -> str:
    dist = make_wheel(name, version, summary=f"{name} {version}")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        response = upload(http, dist, token)
    assert response.status_code == 200, response.text
    return dist.sha256


def _fresh(tmp_path: Path, name: str, postgres_base: str | None, origin: Settings) -> Settings:
    """A new data directory and database, on the origin's blob store (an object store's
    blobs stay in place: the backup records and the restore checks them)."""
    url = create_database(postgres_base)
    overrides = {"data": tmp_path / name, "database_url": url, **same_blobs(origin)}
    return load_settings(overrides=overrides, environ={})


def test_backup_then_restore_serves_every_file(
    origin: LiveServer, tmp_path: Path, postgres_base: str | None
) -> None:
    token = origin.token("alice")
    sha = _upload(origin, token, "acme-one", "1.0")
    root = tmp_path / "main-1.root.json"
    shutil.copyfile(origin.settings.tree_dir / "main" / "tuf" / "1.root.json", root)
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    refused = run_cli(origin.settings, "backup", str(open_dir), check=False)
    assert refused.returncode != 0 and "readable by others" in refused.stderr, refused.stderr
    backup = tmp_path / "backup"
    # An upload landing while the backup runs: it is in the backup with its blob, or not at all.
    with ThreadPoolExecutor(1) as pool:
        during = pool.submit(_upload, origin, token, "acme-during", "1.0")
        result = run_cli(origin.settings, "backup", str(backup))
        during_sha = during.result()
    assert "backed up" in result.stdout
    assert backup.stat().st_mode & 0o077 == 0
    assert all(p.stat().st_mode & 0o077 == 0 for p in (backup / "keys").rglob("*"))
    manifest = json.loads((backup / "MANIFEST.json").read_text())
    assert sha in manifest["blobs"]
    _upload(origin, token, "acme-late", "1.0")
    stop(origin)

    restored = _fresh(tmp_path, "restored", postgres_base, origin.settings)
    out = run_cli(restored, "restore", str(backup))
    assert "restored" in out.stdout, out.stdout + out.stderr
    # The upload during the backup is in it with its blob, or not at all.
    files = {"acme-one": sha}
    if during_sha in manifest["blobs"]:
        files["acme-during"] = during_sha
    server = start_server(restored, tmp_path / "restored.log")
    try:
        assert_restored_serves(server, files, ["acme-late"], "acme-one", root, tmp_path)
    finally:
        stop(server)


def test_corrupt_and_truncated_backups_are_refused(
    origin: LiveServer, tmp_path: Path, postgres_base: str | None
) -> None:
    sha = _upload(origin, origin.token("alice"), "acme-one", "1.0")
    backup = tmp_path / "backup"
    run_cli(origin.settings, "backup", str(backup))
    stop(origin)
    blob = backup / "blobs" / sha[:2] / sha[2:4] / sha
    good = blob.read_bytes()
    blob.unlink()  # a hard link to the origin's blob: replace, never write through it
    blob.write_bytes(good[:-1] + b"x")
    restored = _fresh(tmp_path, "restored", postgres_base, origin.settings)
    result = run_cli(restored, "restore", str(backup), check=False)
    assert result.returncode != 0 and "corrupt" in result.stderr, result.stderr
    assert not restored.data.exists()
    blob.unlink()
    blob.write_bytes(good)
    (backup / "MANIFEST.json").unlink()
    result = run_cli(restored, "restore", str(backup), check=False)
    assert result.returncode != 0 and "incomplete" in result.stderr, result.stderr
    assert not restored.data.exists()


def test_a_failed_backup_leaves_nothing_behind(origin: LiveServer, tmp_path: Path) -> None:
    sha = _upload(origin, origin.token("alice"), "acme-gone", "1.0")
    stop(origin)
    # A blob the database names is gone from the store: the backup cannot be whole.
    blob = origin.settings.blob_dir / sha[:2] / sha[2:4] / sha
    blob.unlink()
    made = tmp_path / "new-backup"
    result = run_cli(origin.settings, "backup", str(made), check=False)
    assert result.returncode != 0 and f"blob {sha}" in result.stderr, result.stderr
    assert not made.exists()  # it made the directory, so it removes it
    given = tmp_path / "given-backup"
    given.mkdir(mode=0o700)
    result = run_cli(origin.settings, "backup", str(given), check=False)
    assert result.returncode != 0 and "is missing" in result.stderr, result.stderr
    assert given.is_dir() and not any(given.iterdir())  # the operator's, emptied again


def _files_in(settings: Settings) -> set[str]:
    engine = sqlalchemy.create_engine(settings.db_url)
    try:
        with engine.connect() as connection:
            return set(connection.scalars(sqlalchemy.text("SELECT filename FROM files")))
    finally:
        engine.dispose()


def _wait_for(path: Path, what: str) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, f"no {what} within 60 s"
        time.sleep(0.05)


def test_a_failed_postgres_restore_leaves_the_old_database(
    origin: LiveServer, tmp_path: Path, postgres_base: str | None
) -> None:
    """pg_restore failing part-way (the dump's last data block is cut off) is rolled back
    whole: the database being replaced keeps every row, and the data directory stays."""
    if postgres_base is None:
        pytest.skip("a PostgreSQL restore (TILSIT_TEST_DATABASE=postgresql)")
    token = origin.token("alice")
    _upload(origin, token, "acme-one", "1.0")
    backup = tmp_path / "backup"
    run_cli(origin.settings, "backup", str(backup))
    _upload(origin, token, "acme-two", "1.0")
    stop(origin)
    before = _files_in(origin.settings)
    assert len(before) == 2
    # Cut short after its table of contents, and the manifest made to agree: a dump that was
    # damaged before its sha256 was taken, which only pg_restore itself can find out.
    dump = backup / "tilsit.pgdump"
    body = dump.read_bytes()
    dump.write_bytes(body[:-16])
    manifest_path = backup / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["tilsit.pgdump"] = hashlib.sha256(body[:-16]).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    keys = sorted(p.name for p in (origin.settings.data / "keys").rglob("*"))

    refused = run_cli(origin.settings, "restore", str(backup), check=False)
    assert refused.returncode != 0 and "not empty" in refused.stderr, refused.stderr
    failed = run_cli(origin.settings, "restore", "--force", str(backup), check=False)
    assert failed.returncode != 0, failed.stdout
    assert _files_in(origin.settings) == before
    assert "rolled back" in failed.stderr, failed.stderr
    assert sorted(p.name for p in (origin.settings.data / "keys").rglob("*")) == keys
    assert not list(tmp_path.glob(".restore-*"))
    # The whole dump, once the database holds only what it replaces, replaces it in one go.
    dump.write_bytes(body)
    manifest["files"]["tilsit.pgdump"] = hashlib.sha256(body).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    # A table the backup does not hold would outlive --clean: refused before any change.
    engine = sqlalchemy.create_engine(origin.settings.db_url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("CREATE TABLE local_notes (note text)"))
        extra = run_cli(origin.settings, "restore", "--force", str(backup), check=False)
        assert extra.returncode != 0 and "public.local_notes" in extra.stderr, extra.stderr
        assert _files_in(origin.settings) == before
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("DROP TABLE local_notes"))
    finally:
        engine.dispose()
    run_cli(origin.settings, "restore", "--force", str(backup))
    assert _files_in(origin.settings) == {f for f in before if f.startswith("acme_one")}


def test_an_upload_after_the_dump_is_not_in_the_manifest(
    origin: LiveServer, tmp_path: Path, postgres_base: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blob list is read in the dump's own snapshot: an upload that commits once pg_dump
    has finished, before the list is read, is in neither the dump nor the manifest."""
    if postgres_base is None:
        pytest.skip("a PostgreSQL backup (TILSIT_TEST_DATABASE=postgresql)")
    pg_dump = find_bin("pg_dump")
    assert pg_dump, "pg_dump is installed with the PostgreSQL the suite runs on"
    token = origin.token("alice")
    sha = _upload(origin, token, "acme-one", "1.0")
    # pg_dump as found on PATH: the real one, then it waits for the test's upload.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "pg_dump"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'"{pg_dump}" "$@" || exit $?\n'
        f'touch "{tmp_path}/dumped"\n'
        f'while [ ! -e "{tmp_path}/uploaded" ]; do sleep 0.05; done\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    backup = tmp_path / "backup"
    with ThreadPoolExecutor(1) as pool:
        taken = pool.submit(run_cli, origin.settings, "backup", str(backup), check=False)
        try:
            _wait_for(tmp_path / "dumped", "dump")
            late = _upload(origin, token, "acme-late", "1.0")
        finally:
            (tmp_path / "uploaded").touch()
        result = taken.result()
    assert result.returncode == 0, result.stderr
    manifest = json.loads((backup / "MANIFEST.json").read_text())
    assert sha in manifest["blobs"]
    assert late not in manifest["blobs"]
    stop(origin)
    restored = _fresh(tmp_path, "restored", postgres_base, origin.settings)
    run_cli(restored, "restore", str(backup))
    assert _files_in(restored) == {f for f in _files_in(origin.settings) if "late" not in f}
