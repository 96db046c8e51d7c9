"""Secrets at rest: the database, its side files and the mail outbox are owner-only
from the first byte, and ``tilsit serve`` tightens or refuses looser modes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tilsit.auth.mail import send_mail
from tilsit.config import Settings, load_settings
from tilsit.instance import open_instance
from tilsit.store.private import LooseSecretMode, create_private_file, tighten, write_private

from ..conftest import start_server, stop


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    # These tests are about files on this host: always the embedded database.
    return load_settings(overrides={"data": tmp_path / "data"}, environ={})


def test_a_new_database_and_its_side_files_are_owner_only(sqlite_settings: Settings) -> None:
    os.umask(0o022)
    instance = open_instance(sqlite_settings)
    try:
        files = [p for p in instance.db.secret_files() if p.exists()]
        # WAL mode: the database, its -wal and -shm files exist while it is open.
        assert {p.name for p in files} >= {"tilsit.db", "tilsit.db-wal", "tilsit.db-shm"}
        for path in files:
            assert mode(path) == 0o600, path
    finally:
        instance.close()


def test_the_outbox_is_owner_only(sqlite_settings: Settings) -> None:
    os.umask(0o022)
    path = send_mail(sqlite_settings, "alice@example.test", "Reset", "a secret link")
    assert path is not None
    assert mode(sqlite_settings.outbox_dir) == 0o700
    assert mode(path) == 0o600
    assert [p.name for p in sqlite_settings.outbox_dir.iterdir()] == [path.name]


def test_create_private_file_never_widens_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "db"
    assert create_private_file(target)
    assert mode(target) == 0o600
    target.write_bytes(b"kept")
    assert not create_private_file(target)
    assert target.read_bytes() == b"kept"
    write_private(tmp_path / "mail", b"x")
    assert mode(tmp_path / "mail") == 0o600


def test_tighten_fixes_and_names_loose_files(tmp_path: Path) -> None:
    loose = tmp_path / "tilsit.db"
    loose.write_bytes(b"")
    os.chmod(loose, 0o644)
    outbox = tmp_path / "outbox"
    outbox.mkdir(mode=0o755)
    os.chmod(outbox, 0o755)  # noqa: S103 (the loose mode under test)
    (outbox / "a.eml").write_bytes(b"link")
    os.chmod(outbox / "a.eml", 0o664)
    fixes = tighten([loose, tmp_path / "missing-wal"], [outbox])
    assert {(f.path.name, f.old, f.new) for f in fixes} == {
        ("tilsit.db", 0o644, 0o600),
        ("outbox", 0o755, 0o700),
        ("a.eml", 0o664, 0o600),
    }
    assert "tilsit.db: mode 644 -> 600" in str(next(f for f in fixes if f.path == loose))
    assert tighten([loose], [outbox]) == []


def test_tighten_refuses_a_symbolic_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    os.chmod(target, 0o644)
    link = tmp_path / "tilsit.db"
    link.symlink_to(target)
    with pytest.raises(LooseSecretMode, match=r"tilsit\.db is a symbolic link"):
        tighten([link], [])
    assert mode(target) == 0o644


def test_serve_tightens_an_older_data_directory(sqlite_settings: Settings, tmp_path: Path) -> None:
    """A data directory made before this change (0644 database, 0755 outbox) is fixed at start."""
    instance = open_instance(sqlite_settings)
    instance.close()
    send_mail(sqlite_settings, "alice@example.test", "Reset", "a secret link")
    database = sqlite_settings.data / "tilsit.db"
    for path in (database, *sqlite_settings.outbox_dir.iterdir()):
        os.chmod(path, 0o644)
    os.chmod(sqlite_settings.outbox_dir, 0o755)  # noqa: S103 (the loose mode under test)
    log = tmp_path / "serve.log"
    server = start_server(sqlite_settings, log)
    try:
        assert httpx.get(f"{server.url}/_/health", timeout=5).status_code == 200
    finally:
        stop(server)
    assert mode(database) == 0o600
    assert mode(sqlite_settings.outbox_dir) == 0o700
    assert all(mode(p) == 0o600 for p in sqlite_settings.outbox_dir.iterdir())
    text = log.read_text()
    assert f"tightened {database}: mode 644 -> 600 (it holds secrets)" in text


@pytest.mark.parametrize(
    "secret", ['smtp_password = "hunter22"', 's3_secret_access_key = "wJalrXUtnFEMI"']
)
def test_serve_tightens_a_config_file_that_holds_a_password(
    sqlite_settings: Settings, tmp_path: Path, secret: str
) -> None:
    config = tmp_path / "tilsit.toml"
    config.write_text(secret + "\n")
    os.chmod(config, 0o644)
    server = start_server(sqlite_settings, tmp_path / "serve.log", "--config", str(config))
    stop(server)
    assert mode(config) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a file another user owns")
def test_serve_refuses_a_loose_secret_it_cannot_fix(sqlite_settings: Settings) -> None:
    open_instance(sqlite_settings).close()
    database = sqlite_settings.data / "tilsit.db"
    os.chmod(database, 0o644)
    os.chown(database, 65534, 65534)  # nobody: tilsit (root here) runs as another uid
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tilsit",
            "serve",
            "--data",
            str(sqlite_settings.data),
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "TILSIT_DATABASE_URL"},
    )
    assert result.returncode != 0
    assert f"{database} has mode 644 and belongs to uid 65534" in result.stderr
