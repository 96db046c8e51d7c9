"""Rendering the nginx config: input checks, nginx -t, and the no-upstream variant."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import stop_process
from tests.readpath.conftest import need_nginx, start_nginx
from tilsit.nginx import render_nginx_config, render_standalone
from tilsit.nginx.config import PERL_SETS, check_perl, perl_parts


@pytest.mark.parametrize(
    ("listen", "index", "upstream"),
    [
        ("80; include /etc/passwd", "main", None),
        ("80", "Main", None),
        ("80", "main;", None),
        ("80", "main", "127.0.0.1:8080; evil"),
        ("80", "main", "ftp://127.0.0.1"),
    ],
)
def test_refuses_what_would_break_the_config(
    tmp_path: Path, listen: str, index: str, upstream: str | None
) -> None:
    with pytest.raises(ValueError):
        render_nginx_config(tmp_path, listen, index, upstream)


def test_perl_fits_in_nginx_parameters() -> None:
    for part, _call in PERL_SETS.values():
        helpers = perl_parts()[part] if part else ""
        assert len(helpers) < 4000
        check_perl(helpers)
    with pytest.raises(ValueError):
        check_perl("print 'x';")
    with pytest.raises(ValueError):
        check_perl('print "a\\n";')


def test_include_has_no_main_context_directives(tmp_path: Path) -> None:
    text = render_nginx_config(tmp_path, "127.0.0.1:8080", "main", "127.0.0.1:8081")
    assert "load_module" not in text and "events" not in text
    assert text.count("server {") == 1
    assert f'root "{tmp_path.resolve()}";' in text


@pytest.mark.nginx
@pytest.mark.parametrize("upstream", ["127.0.0.1:8081", "http://127.0.0.1:8081/", None])
def test_nginx_accepts_the_config(tmp_path: Path, upstream: str | None) -> None:
    need_nginx()
    config = tmp_path / "nginx.conf"
    config.write_text(
        render_standalone(
            tmp_path / "tree", "127.0.0.1:1", "main", upstream, run_dir=tmp_path, user="root"
        )
    )
    result = subprocess.run(
        ["nginx", "-t", "-c", str(config), "-p", str(tmp_path), "-e", str(tmp_path / "err.log")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.nginx
def test_without_upstream_only_the_tree_is_served(tmp_path: Path) -> None:
    need_nginx()
    tree = tmp_path / "tree"
    (tree / "main" / "simple").mkdir(parents=True)
    (tree / "main" / "simple" / "index.html").write_text("<!DOCTYPE html>\n<!--SERIAL 9-->\n")
    (tree / ".serial").write_text("9\n")
    process, url = start_nginx(tree, None, tmp_path / "run")
    try:
        page = httpx.get(f"{url}/simple/")
        assert page.status_code == 200
        assert page.headers["x-pypi-last-serial"] == "9"
        assert httpx.post(f"{url}/legacy/", data={"a": "b"}).status_code == 405
        assert httpx.get(f"{url}/_/health").status_code == 404
        assert httpx.get(f"{url}/.serial").status_code == 404
        assert httpx.get(f"{url}/").status_code == 404
    finally:
        stop_process(process)
