"""``tilsit backup`` and ``tilsit restore`` on a live server, with an upload landing after
the database copy; the restored host serves every file with its hash and verifies against the
origin's first root; a corrupt or truncated backup is refused and leaves the target alone."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import LiveServer, create_database, run_cli, start_server, stop
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


def _fresh(tmp_path: Path, name: str, postgres_base: str | None) -> Settings:
    url = create_database(postgres_base)
    return load_settings(overrides={"data": tmp_path / name, "database_url": url}, environ={})


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

    restored = _fresh(tmp_path, "restored", postgres_base)
    out = run_cli(restored, "restore", str(backup))
    assert "restored" in out.stdout, out.stdout + out.stderr
    server = start_server(restored, tmp_path / "restored.log")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            page = http.get(
                "/simple/acme-one/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
            ).json()
            [file] = page["files"]
            body = http.get(urlsplit(file["url"]).path).content
            assert hashlib.sha256(body).hexdigest() == sha
            assert http.get("/simple/acme-late/").status_code == 404
            if during_sha in manifest["blobs"]:
                page = http.get(
                    "/simple/acme-during/",
                    headers={"Accept": "application/vnd.pypi.simple.v1+json"},
                ).json()
                [file] = page["files"]
                body = http.get(urlsplit(file["url"]).path).content
                assert hashlib.sha256(body).hexdigest() == during_sha
        target = tmp_path / "installed"
        pip = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-cache-dir",
                "--disable-pip-version-check",
                "--target",
                str(target),
                "--index-url",
                f"{server.url}/simple/",
                "acme-one==1.0",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert pip.returncode == 0, pip.stderr
        assert (target / "acme_one" / "__init__.py").is_file()
        verify = subprocess.run(
            [sys.executable, "-m", "tilsit", "verify", f"{server.url}/main/", "--root", str(root)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
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
    restored = _fresh(tmp_path, "restored", postgres_base)
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
