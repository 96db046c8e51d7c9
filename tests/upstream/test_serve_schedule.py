"""`tilsit serve` syncs a mirror that has an interval, without anyone running `mirror sync`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.builders import make_wheel
from tests.conftest import run_cli, start_server, stop
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
            # The page is published while the sync is still running and the
            # status is written when it ends, so wait for both.
            deadline = time.monotonic() + 60
            status, freshness = 0, dict[str, object]()
            while time.monotonic() < deadline:
                status = httpx.get(f"{server.url}/mirror/simple/scheduled/").status_code
                answer = httpx.get(f"{server.url}/mirror/mirror-status.json")
                freshness = answer.json() if answer.status_code == 200 else {}
                if status == 200 and freshness.get("last_success"):
                    break
                time.sleep(0.25)
            log = (tmp_path / "down" / "server.log").read_text()
            assert status == 200, log
            assert freshness.get("last_success") and freshness.get("last_error") is None, log
        finally:
            stop(server)
    finally:
        stop(upstream.live)


def test_first_scheduled_sync_applies_filters_given_at_creation(
    postgres_base: str | None, tmp_path: Path
) -> None:
    (tmp_path / "up").mkdir()
    upstream = start_upstream(tmp_path / "up", postgres_base)
    try:
        upstream.upload(
            make_wheel("wanted", "1.0"),
            make_wheel("wanted", "2.0rc1"),
            make_wheel("unwanted", "1.0"),
        )
        settings, instance = downstream(tmp_path / "down", postgres_base)
        instance.close()
        created = run_cli(
            settings,
            "index",
            "create",
            "mirror",
            "--mirror",
            upstream.simple_url,
            "--interval",
            "1h",
            "--allow",
            "wanted",
            "--no-prereleases",
        )
        assert "synced every 3600 s" in created.stdout, created.stdout
        server = start_server(settings, tmp_path / "down" / "server.log")
        try:
            deadline = time.monotonic() + 60
            freshness = dict[str, object]()
            while time.monotonic() < deadline:
                answer = httpx.get(f"{server.url}/mirror/mirror-status.json")
                freshness = answer.json() if answer.status_code == 200 else {}
                if freshness.get("last_success"):
                    break
                time.sleep(0.25)
            log = (tmp_path / "down" / "server.log").read_text()
            assert freshness.get("last_success"), log
            page = httpx.get(f"{server.url}/mirror/simple/wanted/?format=json")
            assert page.status_code == 200, log
            assert [f["filename"] for f in page.json()["files"]] == ["wanted-1.0-py3-none-any.whl"]
            assert httpx.get(f"{server.url}/mirror/simple/unwanted/").status_code == 404
        finally:
            stop(server)
    finally:
        stop(upstream.live)
