"""The nginx support as files: the shipped Perl module, the templates, and their output."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.clients.tools import binary
from tests.conftest import need
from tests.nginx.golden_variants import GOLDEN, VARIANTS, render
from tilsit.nginx.config import PERL_SETS, perl_parts

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tilsit" / "nginx"
PERL_MODULE_FILE = PACKAGE / "TilsitNginx.pm"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_output_is_what_it_was_before_the_move(tmp_path: Path, name: str) -> None:
    """Byte for byte the configuration of the Python-string era, for each variant."""
    expected = (GOLDEN / f"{name}.conf").read_text(encoding="utf-8")
    assert render(name, tmp_path / "tree", tmp_path / "run") == expected


def test_perl_module_compiles() -> None:
    """``perl -c -w`` on the shipped file: it is Perl, not a string that only nginx reads.

    The module calls the nginx request object only through methods on ``$r``, resolved
    when nginx runs it, so plain perl compiles it without nginx's own ``nginx`` package.
    """
    need(shutil.which("perl") is not None, "perl (Debian: perl-base)")
    result = subprocess.run(
        ["perl", "-c", "-w", str(PERL_MODULE_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"{PERL_MODULE_FILE} syntax OK", result.stderr


def test_perl_module_loads_as_a_module_under_strict() -> None:
    """``require`` under strict and warnings: the file ends true and warns of nothing."""
    need(shutil.which("perl") is not None, "perl (Debian: perl-base)")
    result = subprocess.run(
        [
            "perl",
            "-w",
            "-I",
            str(PACKAGE),
            "-e",
            "use strict; use TilsitNginx; print TilsitNginx::normalize_name('Foo_Bar.baz');",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "foo-bar-baz")


def test_every_part_is_used_and_the_file_is_only_parts() -> None:
    """The parts cover the module's Perl: nothing outside them but comments and ``1;``."""
    parts = perl_parts()
    assert set(parts) == {part for part, _call in PERL_SETS.values() if part}
    source = PERL_MODULE_FILE.read_text(encoding="utf-8")
    rest = source
    for text in parts.values():
        rest = rest.replace(text, "", 1)
    assert [line for line in rest.splitlines() if line.strip() and not line.startswith("#")] == [
        "1;"
    ]


def test_wheel_ships_the_perl_module_and_templates(tmp_path: Path) -> None:
    """The files are package data: a wheel built by hatchling holds them next to config.py."""
    python = binary("hatch", "python")  # hatch's environment carries hatchling
    result = subprocess.run(
        [str(python), "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=PACKAGE.parents[2],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("tilsit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for name in ("TilsitNginx.pm", "server.conf", "maps.conf", "nginx.conf", "config.py"):
        assert f"tilsit/nginx/{name}" in names
