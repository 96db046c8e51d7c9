"""``tilsit verify`` of a private index (a read token) and over HTTPS with its own CA.

Both go through the one HTTP client verify uses for metadata, hashed targets and
plain names, so a token or a CA given once applies to every request.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from tuf.api.metadata import Metadata, Timestamp

from tests.builders import make_wheel
from tests.conftest import start_server, start_tls_server, stop
from tests.trust.signed import faults, run_verify, wait_for
from tests.uploads import upload
from tilsit.config import Settings


def _version(path: Path) -> int:
    return Metadata[Timestamp].from_bytes(path.read_bytes()).signed.version


def test_private_index_verifies_with_a_read_token_only(settings: Settings, tmp_path: Path) -> None:
    server = start_server(settings, tmp_path / "server.log")
    try:
        server.cli("index", "create", "sec", "--private", "--create-policy", "anyone")
        timestamp = settings.tree_dir / "sec" / "tuf" / "timestamp.json"
        wait_for(timestamp.is_file, "the private index's first timestamp")
        before = _version(timestamp)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            response = upload(
                http, make_wheel("hush", "1.0"), server.token("alice"), "/sec/legacy/"
            )
        assert response.status_code == 200, response.text
        wait_for(lambda: _version(timestamp) > before, "the upload signed")
        server.cli("user", "create", "reader")
        server.cli("index", "grant", "sec", "reader", "read")
        reader = server.token("reader")
        root = str(settings.tree_dir / "sec" / "tuf" / "1.root.json")
        env = {k: v for k, v in os.environ.items() if k != "TILSIT_TOKEN"}
        env["NETRC"] = str(tmp_path / "no-netrc")  # whatever ~/.netrc this machine has

        anonymous = run_verify(server.url, "--index", "sec", "--root", root, "--fresh", env=env)
        assert anonymous.returncode == 2, anonymous.stdout + anonymous.stderr
        assert faults(anonymous) == ["access denied"], anonymous.stdout

        allowed = run_verify(
            server.url, "--index", "sec", "--root", root, "--fresh",
            env={**env, "TILSIT_TOKEN": reader},
        )  # fmt: skip
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert "0 targets listed" not in allowed.stdout, allowed.stdout
        assert faults(allowed) == []

        # The same token from a netrc file, as pip and uv read it.
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login __token__ password {reader}\n")
        netrc.chmod(0o600)
        from_netrc = run_verify(
            server.url,
            "--index",
            "sec",
            "--root",
            root,
            "--fresh",
            env={**env, "NETRC": str(netrc)},
        )
        assert from_netrc.returncode == 0, from_netrc.stdout + from_netrc.stderr
    finally:
        stop(server)


def test_https_source_needs_its_ca(settings: Settings, tmp_path: Path) -> None:
    tls = start_tls_server(settings, tmp_path / "server.log", tmp_path / "tls")
    try:
        timestamp = settings.tree_dir / "main" / "tuf" / "timestamp.json"
        wait_for(timestamp.is_file, "the first timestamp")
        before = _version(timestamp)
        with httpx.Client(base_url=tls.live.url, timeout=60, verify=tls.context) as http:
            response = upload(http, make_wheel("secure", "1.0"), tls.live.token("alice"))
        assert response.status_code == 200, response.text
        wait_for(lambda: _version(timestamp) > before, "the upload signed")
        root = str(settings.tree_dir / "main" / "tuf" / "1.root.json")
        env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
        base = f"{tls.live.url}/main/"
        untrusted = run_verify(base, "--root", root, "--fresh", env=env)
        # The test CA is not the system's: the timestamp cannot even be fetched.
        assert untrusted.returncode == 2, untrusted.stdout + untrusted.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stdout, untrusted.stdout
        trusted = run_verify(base, "--root", root, "--fresh", "--cafile", str(tls.ca_pem), env=env)
        assert trusted.returncode == 0, trusted.stdout + trusted.stderr
        assert faults(trusted) == []
    finally:
        stop(tls.live)
