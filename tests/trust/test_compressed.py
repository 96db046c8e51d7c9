"""TUF metadata served gzip-compressed, and compressed bodies read bounded.

tilsit writes ``N.<role>.json.gz`` beside each versioned metadata file; its read
path and nginx (``gzip_static``) send it to clients that accept gzip, while the
signed hashes and lengths stay those of the plain bytes. ``tilsit verify`` and a
mirror of a tilsit origin decode it; a hostile server's compressed bomb is
refused a bounded step at a time.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import httpx
import pytest
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Timestamp

from tests.builders import make_wheel
from tests.conftest import LiveServer, stop_process
from tests.readpath.conftest import need_nginx, start_nginx
from tests.trust.signed import run_verify
from tests.trust.tufclient import fetch, updater
from tests.uploads import upload
from tests.upstream.hostile import Answer, HostileServer, gzip_bomb
from tilsit.trust.compressed import CHUNK
from tilsit.trust.layout import file_target
from tilsit.trust.verify_sources import HttpxFetcher, http_client


def _upload_some(server: LiveServer, count: int = 3) -> list[bytes]:
    wheels = [make_wheel(f"squeeze_{n}", "1.0") for n in range(count)]
    with httpx.Client(base_url=server.url, timeout=60) as http:
        secret = server.token()
        for wheel in wheels:
            assert upload(http, wheel, secret).status_code == 200
    return [w.data for w in wheels]


def _current_snapshot(tuf: Path) -> str:
    timestamp = Metadata[Timestamp].from_bytes((tuf / "timestamp.json").read_bytes())
    return f"{timestamp.signed.snapshot_meta.version}.snapshot.json"


def _check_served(base: str, tuf: Path) -> None:
    """The current snapshot compressed to a client that asks, plain to one that does not;
    the timestamp (replaced in place) never compressed."""
    name = _current_snapshot(tuf)
    plain = (tuf / name).read_bytes()
    with httpx.Client(base_url=base, timeout=30) as http:
        packed = http.get(f"/main/tuf/{name}", headers={"Accept-Encoding": "gzip"})
        assert packed.status_code == 200
        assert packed.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in packed.headers["vary"].lower()
        assert packed.content == plain  # httpx decoded it: the signed bytes
        assert int(packed.headers["content-length"]) < len(plain) / 3
        bare = http.get(f"/main/tuf/{name}", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in bare.headers
        assert bare.content == plain
        refused = http.get(f"/main/tuf/{name}", headers={"Accept-Encoding": "gzip;q=0, *"})
        assert "content-encoding" not in refused.headers
        stamp = http.get("/main/tuf/timestamp.json", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in stamp.headers
        assert stamp.content == (tuf / "timestamp.json").read_bytes()
        # The copy is not a URL of its own.
        assert http.get(f"/main/tuf/{name}.gz").status_code == 404


def test_tilsit_serves_metadata_gzip_and_every_client_verifies(
    live_server: LiveServer, tmp_path: Path
) -> None:
    wheels = _upload_some(live_server)
    tree = live_server.settings.tree_dir
    tuf = tree / "main" / "tuf"
    name = _current_snapshot(tuf)
    assert gzip.decompress((tuf / f"{name}.gz").read_bytes()) == (tuf / name).read_bytes()
    _check_served(live_server.url, tuf)

    # tilsit verify's own fetcher asks for gzip and hands ngclient the plain bytes.
    seen: list[str] = []

    def record(response: httpx.Response) -> None:
        seen.append(response.headers.get("content-encoding", ""))

    http = http_client(30)
    http.event_hooks["response"].append(record)
    fetcher = HttpxFetcher(http)
    got = fetcher.download_bytes(f"{live_server.url}/main/tuf/{name}", 10 << 20)
    http.close()
    assert got == (tuf / name).read_bytes()
    assert seen == ["gzip"]

    root = tree / "main" / "tuf" / "1.root.json"
    result = run_verify(live_server.url, "--index", "main", "--root", str(root), "--fresh")
    assert result.returncode == 0, result.stdout + result.stderr
    # python-tuf's ngclient (urllib3), as any TUF client would fetch.
    client = updater(live_server.url, "main", root.read_bytes(), tmp_path / "client")
    client.refresh()
    assert b"squeeze-0" in fetch(client, "simple/index.v1.json")
    assert fetch(client, "simple/squeeze-1/index.html")
    assert len(wheels) == 3


@pytest.mark.nginx
def test_nginx_serves_the_gzip_copies(live_server: LiveServer, tmp_path: Path) -> None:
    need_nginx()
    wheel = make_wheel("squeeze_nginx", "1.0")
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        assert upload(http, wheel, live_server.token()).status_code == 200
    tree = live_server.settings.tree_dir
    process, url = start_nginx(tree, live_server.url, tmp_path / "nginx")
    try:
        _check_served(url, tree / "main" / "tuf")
        root = (tree / "main" / "tuf" / "1.root.json").read_bytes()
        client = updater(url, "main", root, tmp_path / "client")
        client.refresh()
        assert fetch(client, file_target(wheel.sha256, wheel.filename)) == wheel.data
        result = run_verify(
            url, "--index", "main", "--root", str(tree / "main/tuf/1.root.json"), "--fresh"
        )
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        stop_process(process)


def test_a_compressed_bomb_is_refused_a_bounded_step_at_a_time() -> None:
    """A hostile server answers metadata with 1 GiB of zeros in ~1 MB of gzip: the
    fetchers of verify and of the mirror never hold more than one capped piece, and
    stop as soon as the ratio gives it away."""
    from tilsit.trust.mirror import _Fetcher

    hostile = HostileServer().start()
    hostile.routes["/main/tuf/2.snapshot.json"] = gzip_bomb(1 << 30)
    # A deflate body that is not deflate: named as such, never a traceback.
    hostile.routes["/main/tuf/3.snapshot.json"] = Answer(
        200, {"content-encoding": "gzip"}, b"not gzip at all" * 10
    )
    try:
        verify_http = http_client(30)
        mirror = _Fetcher({})
        for fetcher in (HttpxFetcher(verify_http), mirror):
            url = f"{hostile.url}/main/tuf/2.snapshot.json"
            largest = 0
            total = 0
            with pytest.raises(tuf_errors.DownloadError, match="compression bomb"):
                for chunk in fetcher.fetch(url):
                    largest = max(largest, len(chunk))
                    total += len(chunk)
            assert largest <= CHUNK
            assert total < 64 << 20
            with pytest.raises(tuf_errors.DownloadError, match="does not decode as gzip"):
                fetcher.download_bytes(f"{hostile.url}/main/tuf/3.snapshot.json", 1 << 20)
        verify_http.close()
        mirror.close()
        # Well-formed gzip of real-sized JSON passes the ratio check.
        document = json.dumps(
            {"signed": {"meta": {f"bins-{i:03x}.json": {"version": i} for i in range(4096)}}}
        ).encode()
        body = zlib.compress(document, 9, 16 + zlib.MAX_WBITS)  # fmt: skip
        hostile.routes["/main/tuf/4.snapshot.json"] = Answer(
            200, {"content-encoding": "gzip"}, body
        )
        with http_client(30) as http:
            got = HttpxFetcher(http).download_bytes(
                f"{hostile.url}/main/tuf/4.snapshot.json", 10 << 20
            )
        assert got == document
    finally:
        hostile.stop()
