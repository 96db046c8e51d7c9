"""tuf-js (the npm TUF client, which tilsit did not write) verifies a tilsit tree,
and detects one tampered file and one expired timestamp (``faketime``)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need, start_server, stop
from tests.trust.signed import (
    INDEX,
    Signed,
    copy_tree,
    flip_byte,
    hashed_file,
    http_server,
    signed_tree,
)
from tilsit.config import Settings
from tilsit.store.tree import file_path

JS = Path(__file__).parent / "js"


def tufjs_ready() -> Path:
    """tests/trust/js with its pinned node_modules (``npm ci`` when absent)."""
    need(shutil.which("node") is not None and shutil.which("npm") is not None, "node and npm")
    if not (JS / "node_modules" / "tuf-js").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=JS,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return JS


def tufjs(
    base: str, root: Path, *paths: str, faketime: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = ["node", str(tufjs_ready() / "verify.js"), base, str(root), *paths]
    if faketime is not None:
        need(shutil.which("faketime") is not None, "faketime")
        command = ["faketime", "-f", faketime, *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def signed(settings: Settings, tmp_path: Path) -> Iterator[Signed]:
    server = start_server(settings, tmp_path / "server.log")
    try:
        yield signed_tree(server)
    finally:
        stop(server)


def targets_of(signed: Signed) -> list[str]:
    paths = [
        "simple/index.html",
        "simple/index.v1.json",
        "simple/foo/index.html",
        "simple/foo/index.v1.json",
    ]
    for dist in signed.dists:
        paths.append(file_path(dist.sha256, dist.filename))
        if dist.filename.endswith(".whl"):
            paths.append(file_path(dist.sha256, dist.filename) + ".metadata")
    return paths


def test_tufjs_verifies_a_tilsit_tree_and_catches_tamper_and_expiry(
    signed: Signed, tmp_path: Path
) -> None:
    tufjs_ready()
    paths = targets_of(signed)
    copy = copy_tree(signed.tree, tmp_path / "copy")
    with http_server(copy) as url:
        base = f"{url}/{INDEX}/"
        ok = tufjs(base, signed.root, *paths)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.count("OK ") == len(paths)
        # A path no bin lists is refused.
        unlisted = tufjs(base, signed.root, "simple/nothere/index.html")
        assert unlisted.returncode == 1 and "not a signed target" in unlisted.stdout
        # Two days later, nothing re-signed: the copy is stale.
        expired = tufjs(base, signed.root, "simple/index.html", faketime="+2d")
        assert expired.returncode == 1, expired.stdout
        assert "ExpiredMetadataError" in expired.stdout and "timestamp" in expired.stdout
        # One byte of the wheel changed.
        wheel = next(d for d in signed.dists if d.filename == "foo-1.0-py3-none-any.whl")
        flip_byte(hashed_file(copy, wheel.filename))
        tampered = tufjs(base, signed.root, file_path(wheel.sha256, wheel.filename))
        assert tampered.returncode == 1, tampered.stdout
        assert "LengthOrHashMismatchError" in tampered.stdout
