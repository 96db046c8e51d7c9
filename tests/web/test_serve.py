"""`tilsit serve` as an operator starts it: next-step hints, TLS, several workers."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.builders import make_wheel
from tests.conftest import LiveServer, start_server, start_tls_server, stop
from tests.uploads import upload
from tilsit.config import Settings


def test_start_prints_the_next_step(live_server: LiveServer, tmp_path: Path) -> None:
    log = (tmp_path / "server.log").read_text()
    assert f"{live_server.url}/simple/" in log
    assert "tilsit user create" in log
    assert "tilsit token create --user" in log


def test_tls(settings: Settings, tmp_path: Path) -> None:
    tls = start_tls_server(settings, tmp_path / "tls.log", tmp_path / "tls")
    try:
        assert tls.live.url.startswith("https://")
        with httpx.Client(base_url=tls.live.url, verify=tls.context) as http:
            assert http.get("/simple/").status_code == 200
    finally:
        stop(tls.live)


def test_several_workers_share_one_data_directory(settings: Settings, tmp_path: Path) -> None:
    server = start_server(settings, tmp_path / "workers.log", "--workers", "2")
    try:
        token = server.token()
        with httpx.Client(base_url=server.url) as http:
            for version in ("1.0", "1.1", "1.2", "1.3"):
                assert upload(http, make_wheel("foo", version), token).status_code == 200
            # Whichever worker answers, every page shows every upload.
            for _ in range(8):
                with httpx.Client(base_url=server.url) as fresh:
                    doc = fresh.get("/simple/foo/?format=json").json()
                assert doc["versions"] == ["1.0", "1.1", "1.2", "1.3"]
    finally:
        stop(server)
