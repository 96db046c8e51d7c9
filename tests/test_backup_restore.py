"""docs/deploy.md's backup and restore, done as the page says, on a live server.

The database is copied first and the blobs after it, with an upload landing
between the two copies (as on a busy server). The restored host is a fresh data
directory: keys and signed state, then blobs, then the database, then
``tilsit rebuild`` and ``tilsit fsck --verify --dry-run``. Every file the
database copy names must download with its hash, pip must install from the
restored server, and ``tilsit verify`` must pass against the origin's first
root. The other order (blobs first) is shown to lose a file, which is why the
page insists on it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.backup_checks import assert_restored_serves
from tests.builders import make_wheel
from tests.conftest import LiveServer, create_database, run_cli, start_server, stop
from tests.postgres import find_bin
from tests.uploads import upload
from tilsit.config import Settings, load_settings


def _copy_database(settings: Settings, backup: Path) -> None:
    """Step 1 of the page: a consistent copy of the live database."""
    if settings.database_url.startswith("postgresql"):
        url = urlsplit(settings.database_url.replace("+psycopg", ""))
        pg_dump = find_bin("pg_dump")
        assert pg_dump, "pg_dump is installed with the PostgreSQL the suite runs on"
        subprocess.run(
            [
                pg_dump,
                "--format=custom",
                f"--file={backup / 'tilsit.dump'}",
                f"--host={url.hostname}",
                f"--port={url.port}",
                f"--username={url.username}",
                url.path.lstrip("/"),
            ],
            check=True,
            capture_output=True,
        )
        return
    source = sqlite3.connect(settings.data / "tilsit.db")
    target = sqlite3.connect(backup / "tilsit.db")
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _restore_database(backup: Path, settings: Settings, fresh_url: str) -> Settings:
    """Step 3 of the restore: the database copy into the new host's database."""
    if fresh_url.startswith("postgresql"):
        url = urlsplit(fresh_url.replace("+psycopg", ""))
        pg_restore = find_bin("pg_restore")
        assert pg_restore
        subprocess.run(
            [
                pg_restore,
                "--no-owner",
                f"--host={url.hostname}",
                f"--port={url.port}",
                f"--username={url.username}",
                f"--dbname={url.path.lstrip('/')}",
                str(backup / "tilsit.dump"),
            ],
            check=True,
            capture_output=True,
        )
    else:
        shutil.copyfile(backup / "tilsit.db", settings.data / "tilsit.db")
        (settings.data / "tilsit.db").chmod(0o600)
    return settings


def _restore(backup: Path, data: Path, postgres_base: str | None) -> Settings:
    """The restore on a new host: keys and signed state, then blobs, then the database."""
    fresh_url = create_database(postgres_base)
    restored = load_settings(overrides={"data": data, "database_url": fresh_url}, environ={})
    restored.data.mkdir()
    for part in ("keys", "trust", "blobs"):
        shutil.copytree(backup / part, restored.data / part)
    return _restore_database(backup, restored, fresh_url)


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


def test_backup_in_the_documented_order_restores_every_file(
    origin: LiveServer, tmp_path: Path, postgres_base: str | None
) -> None:
    token = origin.token("alice")
    before = {
        "acme-one": _upload(origin, token, "acme-one", "1.0"),
        "acme-two": _upload(origin, token, "acme-two", "2.0"),
    }
    root = tmp_path / "main-1.root.json"
    shutil.copyfile(origin.settings.tree_dir / "main" / "tuf" / "1.root.json", root)

    backup = tmp_path / "backup"
    backup.mkdir(mode=0o700)
    _copy_database(origin.settings, backup)  # 1. the database ...
    # ... while the server goes on taking uploads ...
    _upload(origin, token, "acme-late", "1.0")
    data = origin.settings.data
    shutil.copytree(data / "blobs", backup / "blobs")  # 2. ... then the blobs
    for part in ("keys", "trust"):  # 3. keys and signed state
        shutil.copytree(data / part, backup / part)
    stop(origin)

    restored = _restore(backup, tmp_path / "restored", postgres_base)
    rebuild = run_cli(restored, "rebuild")
    assert "rebuilt the tree" in rebuild.stdout
    fsck = run_cli(restored, "fsck", "--verify", "--dry-run")  # exit 0: nothing missing
    assert "0 problem(s)" in fsck.stdout, fsck.stdout

    server = start_server(restored, tmp_path / "restored.log")
    try:
        # The upload that landed after the database copy is not in the restored index.
        assert_restored_serves(server, before, ["acme-late"], "acme-two", root, tmp_path)
    finally:
        stop(server)


def test_blobs_before_the_database_loses_a_file(
    origin: LiveServer, tmp_path: Path, postgres_base: str | None
) -> None:
    """Why the page orders the copies: blobs first misses an upload the database then names."""
    token = origin.token("alice")
    _upload(origin, token, "acme-one", "1.0")
    backup = tmp_path / "backup"
    backup.mkdir(mode=0o700)
    data = origin.settings.data
    shutil.copytree(data / "blobs", backup / "blobs")  # the wrong order
    late = _upload(origin, token, "acme-late", "1.0")
    _copy_database(origin.settings, backup)
    for part in ("keys", "trust"):
        shutil.copytree(data / part, backup / part)
    stop(origin)

    restored = _restore(backup, tmp_path / "restored", postgres_base)
    run_cli(restored, "rebuild", check=False)
    fsck = run_cli(restored, "fsck", "--verify", "--dry-run", check=False)
    assert fsck.returncode == 1, fsck.stdout + fsck.stderr
    assert f"MISSING blob {late}" in fsck.stdout, fsck.stdout
