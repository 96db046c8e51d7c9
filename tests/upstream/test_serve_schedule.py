"""`tilsit serve` syncs a mirror that has an interval, without anyone running `mirror sync`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.builders import make_wheel
from tests.conftest import start_server, stop
from tests.upstream.conftest import downstream, make_mirror, start_upstream


def test_serve_runs_due_mirror_syncs(postgres_base: str | None, tmp_path: Path) -> None:
    (tmp_path / "up").mkdir()
    upstream = start_upstream(tmp_path / "up", postgres_base)
    try:
        upstream.upload(make_wheel("scheduled", "1.0"))
        settings, instance = downstream(tmp_path / "down", postgres_base)
        make_mirror(instance, upstream.simple_url, interval=3600)
        instance.close()
        server = start_server(settings, tmp_path / "down" / "server.log")
        try:
            deadline = time.monotonic() + 60
            status = 0
            while time.monotonic() < deadline:
                status = httpx.get(f"{server.url}/mirror/simple/scheduled/").status_code
                if status == 200:
                    break
                time.sleep(0.25)
            assert status == 200, (tmp_path / "down" / "server.log").read_text()
            freshness = httpx.get(f"{server.url}/mirror/mirror-status.json").json()
            assert freshness["last_success"] and freshness["last_error"] is None
        finally:
            stop(server)
    finally:
        stop(upstream.live)
