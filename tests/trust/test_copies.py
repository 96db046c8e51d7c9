"""Copies of a tilsit tree (``cp -a``, ``rsync -aH``, an index copied under another
name) served from another port by ``python -m http.server``: a fresh client with
only the origin's root.json verifies each, and pip installs from it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need, start_server, stop
from tests.installs import pip_install
from tests.trust.signed import (
    INDEX,
    Signed,
    copy_tree,
    hashed_file,
    http_server,
    run_verify,
    signed_tree,
)
from tilsit.config import Settings


@pytest.fixture
def signed(settings: Settings, tmp_path: Path) -> Iterator[Signed]:
    server = start_server(settings, tmp_path / "server.log")
    try:
        yield signed_tree(server)
    finally:
        stop(server)


def verify_and_install(copy: Path, root: Path, work: Path, index: str = INDEX) -> None:
    with http_server(copy) as url:
        result = run_verify(url, "--index", index, "--root", str(root), "--fresh")
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("OK: ")
        installed = pip_install(
            "--no-deps",
            "--index-url",
            f"{url}/{index}/simple/",
            "bar-baz==0.1",
            target=work / "site",
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert any((work / "site").glob("bar_baz-0.1.dist-info"))


def test_cp_a_copy_on_another_port(signed: Signed, tmp_path: Path) -> None:
    copy = copy_tree(signed.tree, tmp_path / "copy")
    verify_and_install(copy, signed.root, tmp_path)


def test_rsync_copy_on_another_port(signed: Signed, tmp_path: Path) -> None:
    need(shutil.which("rsync") is not None, "rsync")
    copy = copy_tree(signed.tree, tmp_path / "copy", rsync=True)
    # -H kept the hashed link and the plain name pip fetches as one file.
    hashed = hashed_file(copy, "foo-1.0-py3-none-any.whl")
    plain = next((copy / "packages").rglob("foo-1.0-py3-none-any.whl"))
    assert hashed.stat().st_ino == plain.stat().st_ino
    verify_and_install(copy, signed.root, tmp_path)


def test_index_copied_under_another_name(signed: Signed, tmp_path: Path) -> None:
    """Target paths do not name the index, so a copy called ``up`` verifies
    against ``main``'s root unchanged."""
    copy = copy_tree(signed.tree, tmp_path / "copy")
    shutil.move(copy / INDEX, copy / "up")
    verify_and_install(copy, signed.root, tmp_path, index="up")


def test_a_copy_that_stopped_syncing_fails_once_expired(signed: Signed, tmp_path: Path) -> None:
    need(shutil.which("faketime") is not None, "faketime")
    copy = copy_tree(signed.tree, tmp_path / "copy")
    with http_server(copy) as url:
        fresh = run_verify(
            url, "--index", INDEX, "--root", str(signed.root), "--fresh", faketime="+20h"
        )
        assert fresh.returncode == 0, fresh.stdout
        stale = run_verify(
            url, "--index", INDEX, "--root", str(signed.root), "--fresh", faketime="+25h"
        )
        assert stale.returncode == 2 and "FAULT expired timestamp" in stale.stdout, stale.stdout
