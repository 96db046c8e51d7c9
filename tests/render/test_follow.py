"""The renderer follows the journal: a crash between commit and render heals itself."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.builders import make_wheel
from tests.conftest import AppClient, LiveServer, start_server
from tests.uploads import upload
from tilsit.config import Settings
from tilsit.instance import Instance, open_instance


def test_pages_missed_by_a_crash_are_rendered_at_start(
    client: AppClient, token: str, instance: Instance, settings: Settings
) -> None:
    assert upload(client, make_wheel("foo", "1.0"), token).status_code == 200
    tree = settings.tree_dir
    page = tree / "main/simple/foo/index.v1.json"
    expected = page.read_bytes()
    # As if the process died after the commit but before rendering.
    for path in (page, tree / "main/simple/foo/index.html", tree / "main/simple/index.v1.json"):
        path.unlink()
    (tree / ".serial").write_text("1\n")
    reopened = open_instance(settings)
    try:
        assert page.read_bytes() == expected
        assert (tree / "main/simple/index.v1.json").exists()
        assert reopened.tree.serial() == int((tree / ".serial").read_text())
    finally:
        reopened.close()


def test_catch_up_is_idempotent(client: AppClient, token: str, instance: Instance) -> None:
    assert upload(client, make_wheel("foo", "1.0"), token).status_code == 200
    tree = instance.settings.tree_dir
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    serial = instance.tree.serial()
    assert instance.renderer.catch_up() == serial
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before


def test_acknowledged_upload_survives_kill_9(live_server: LiveServer, tmp_path: Path) -> None:
    token = live_server.token()
    wheel = make_wheel("foo", "1.0")
    with httpx.Client(base_url=live_server.url) as http:
        assert upload(http, wheel, token).status_code == 200
    os.kill(live_server.process.pid, signal.SIGKILL)
    live_server.process.wait(timeout=10)
    restarted = start_server(live_server.settings, tmp_path / "restart.log")
    try:
        with httpx.Client(base_url=restarted.url) as http:
            doc = http.get("/simple/foo/?format=json").json()
            assert [f["filename"] for f in doc["files"]] == [wheel.filename]
            assert http.get(doc["files"][0]["url"]).content == wheel.data
    finally:
        restarted.process.terminate()
        try:
            restarted.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            restarted.process.kill()
