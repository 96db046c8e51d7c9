"""Cache-Control by kind of document, set in a [cache_control] table: tilsit and the
printed nginx configuration send the same values, route by route."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import start_server, stop, stop_process
from tests.readpath.conftest import need_nginx, start_nginx
from tests.uploads import upload
from tilsit.config import InvalidSetting, Settings, load_settings

CONFIG = """
[tilsit]
page_max_age = 45

[cache_control]
json = "max-age=120, public"
files = "max-age=86400, public"
metadata = "max-age=3600, public"
tuf_timestamp = "max-age=5, public"
tuf_other = "max-age=7200, public"
"""


def test_each_kind_has_its_setting(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "tilsit.toml"
    config.write_text(CONFIG)
    server = start_server(settings, tmp_path / "server.log", env={"TILSIT_CONFIG": str(config)})
    try:
        with httpx.Client(base_url=server.url) as http:
            assert upload(http, make_wheel("foo", "1.0"), server.token()).status_code == 200
            url = http.get("/simple/foo/?format=json").json()["files"][0]["url"]
        file_path = urlsplit(url).path
        expected = {
            "/simple/": "max-age=45, public",  # simple left empty: page_max_age
            "/simple/foo/": "max-age=45, public",
            "/main/simple/foo/?format=json": "max-age=45, public",
            "/pypi/foo/json": "max-age=120, public",
            "/main/pypi/foo/1.0/json": "max-age=120, public",
            file_path: "max-age=86400, public",
            file_path + ".metadata": "max-age=3600, public",
            "/main/tuf/timestamp.json": "max-age=5, public",
            "/main/tuf/1.root.json": "max-age=7200, public",
        }
        fronts = [server.url]
        chosen = load_settings(config, environ={}).cache_control
        need_nginx()
        process, nginx_url = start_nginx(
            settings.tree_dir, server.url, tmp_path / "nginx", cache_control=chosen
        )
        fronts.append(nginx_url)
        try:
            for front in fronts:
                with httpx.Client(base_url=front) as http:
                    for path, value in expected.items():
                        response = http.get(path)
                        assert response.status_code == 200, (front, path)
                        assert response.headers["cache-control"] == value, (front, path)
        finally:
            stop_process(process)
    finally:
        stop(server)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("max-age=60", "must say public"),
        ('max-age=60, public"; add_header X 1', "only letters"),
        ("no-cache\r\nX-Evil: 1", "only letters"),
    ],
)
def test_a_bad_value_is_refused_with_its_reason(tmp_path: Path, value: str, reason: str) -> None:
    with pytest.raises(InvalidSetting, match=reason) as refused:
        load_settings(environ={"TILSIT_CACHE_CONTROL_FILES": value})
    assert "cache_control_files" in str(refused.value)
    config = tmp_path / "tilsit.toml"
    config.write_text('[cache_control]\nsimple = "max-age=5"\n')
    with pytest.raises(InvalidSetting, match="must say public"):
        load_settings(config, environ={})


def test_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "tilsit.toml"
    config.write_text('[cache_control]\nsimpel = "no-cache"\n')
    with pytest.raises(InvalidSetting, match="cache_control_simpel"):
        load_settings(config, environ={})
