"""`tilsit serve` as an operator starts it: next-step hints, TLS, several workers."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import trustme

from tests.builders import make_wheel
from tests.conftest import LiveServer, start_server, stop
from tests.uploads import upload
from tilsit.config import Settings


def test_start_prints_the_next_step(live_server: LiveServer, tmp_path: Path) -> None:
    log = (tmp_path / "server.log").read_text()
    assert f"{live_server.url}/simple/" in log
    assert "tilsit user create" in log
    assert "tilsit token create --user" in log


def test_tls(settings: Settings, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_pem, key_pem, ca_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_pem))
    cert.private_key_pem.write_to_path(str(key_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    context = ssl.create_default_context(cafile=str(ca_pem))
    server = start_server(
        settings,
        tmp_path / "tls.log",
        "--tls-cert",
        str(cert_pem),
        "--tls-key",
        str(key_pem),
        scheme="https",
        verify=context,
    )
    try:
        assert server.url.startswith("https://")
        with httpx.Client(base_url=server.url, verify=context) as http:
            assert http.get("/simple/").status_code == 200
    finally:
        stop(server)


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
