"""An issuer's key documents are read uncompressed and bounded: a compressed body is refused.

httpx inflates each network read of a compressed body whole, so a gzip body of a
megabyte (a gigabyte of zeros) became ~64 MB in memory per read before the size cap
saw it. The fetch asks for ``identity`` and refuses any other Content-Encoding.
"""

from __future__ import annotations

import gzip
import ssl
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from tests.httpd import QuietHandler
from tilsit.auth.oidc.jwks import KeysUnavailable, fetch_json, ssl_context


def _bomb() -> bytes:
    return gzip.compress(b"\0" * (64 << 20), 9)  # 64 MiB of zeros: ~64 kB compressed


class _Issuer:
    def __init__(self, tmp: Path) -> None:
        ca = trustme.CA()
        self.ca = tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca))
        bomb = _bomb()
        self.asked: list[str] = []
        issuer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                issuer.asked.append(self.headers.get("accept-encoding", ""))
                plain = self.path == "/plain"
                body = b'{"keys": []}' if plain else bomb
                self.send_response(200)
                self.send_header("content-type", "application/json")
                if not plain:  # sent whatever was asked for, as a hostile issuer would
                    self.send_header("content-encoding", "gzip")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[_Issuer]:
    server = _Issuer(tmp_path)
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_a_compressed_key_document_is_refused_without_inflating_it(issuer: _Issuer) -> None:
    context = ssl_context(str(issuer.ca))
    tracemalloc.start()
    try:
        with pytest.raises(KeysUnavailable, match="Content-Encoding 'gzip'"):
            fetch_json(f"{issuer.url}/jwks", context)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak} bytes while refusing a compressed body"
    assert issuer.asked == ["identity"]
    # A plain document still reads.
    assert fetch_json(f"{issuer.url}/plain", context) == {"keys": []}
