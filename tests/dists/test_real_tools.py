"""Archives written by real tools are read: GNU tar, git archive, Info-ZIP zip.

The strict readers refuse whatever tools could read differently; these tests keep them from
refusing what common tools really write (GNU and POSIX tar headers, git's global PAX comment,
Info-ZIP's timestamp and Unix extra fields). Each test skips when its tool is not on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tilsit.dists import inspect_distribution
from tilsit.spec.filenames import parse_dist_filename

METADATA = b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\nSummary: A demo\n\n"
WHEEL = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def needs(tool: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not on PATH")


def source_tree(root: Path) -> Path:
    tree = root / "demo_pkg-1.0"
    (tree / "src" / "demo_pkg").mkdir(parents=True)
    (tree / "src" / "demo_pkg" / "__init__.py").write_text("x = 1\n")
    (tree / "PKG-INFO").write_bytes(METADATA)
    (tree / "pyproject.toml").write_text('[project]\nname = "demo-pkg"\nversion = "1.0"\n')
    return tree


def check(path: Path) -> None:
    info = inspect_distribution(path, parse_dist_filename(path.name))
    assert (info.name, str(info.version)) == ("demo-pkg", "1.0")


@needs("tar")
@pytest.mark.parametrize("tar_format", ["gnu", "posix", "ustar"])
def test_gnu_tar(tmp_path: Path, tar_format: str) -> None:
    source_tree(tmp_path)
    out = tmp_path / "demo_pkg-1.0.tar.gz"
    subprocess.run(
        ["tar", f"--format={tar_format}", "-czf", out, "-C", tmp_path, "demo_pkg-1.0"],
        check=True,
    )
    check(out)


@needs("git")
def test_git_archive(tmp_path: Path) -> None:
    tree = source_tree(tmp_path)
    git: list[str | Path] = ["git", "-C", tree, "-c", "user.name=t", "-c", "user.email=t@x"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    out = tmp_path / "demo_pkg-1.0.tar.gz"
    archive = [*git, "archive", "--format=tar.gz", "--prefix=demo_pkg-1.0/", "-o", out, "HEAD"]
    subprocess.run(archive, check=True)
    check(out)


@needs("zip")
def test_info_zip(tmp_path: Path) -> None:
    root = tmp_path / "wheel"
    (root / "demo_pkg").mkdir(parents=True)
    (root / "demo_pkg" / "__init__.py").write_text("x = 1\n")
    (root / "demo_pkg-1.0.dist-info").mkdir()
    (root / "demo_pkg-1.0.dist-info" / "METADATA").write_bytes(METADATA)
    (root / "demo_pkg-1.0.dist-info" / "WHEEL").write_bytes(WHEEL)
    out = tmp_path / "demo_pkg-1.0-py3-none-any.whl"
    subprocess.run(["zip", "-qr", out, "."], cwd=root, check=True)
    check(out)
