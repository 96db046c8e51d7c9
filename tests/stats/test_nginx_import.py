"""End to end: nginx, configured by what ``tilsit nginx-config`` prints, serves pip its
files from the tree (tilsit never sees them); ``tilsit downloads import-log`` on nginx's
real log then counts them, once, and the API shows them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests import postgres
from tests.builders import make_wheel
from tests.clients.tools import Sandbox, describe
from tests.conftest import LiveServer, stop_process
from tests.readpath.conftest import need_nginx
from tests.uploads import upload
from tilsit.store.tree import file_path

pytestmark = [pytest.mark.nginx, pytest.mark.clients]


def _start_nginx(server: LiveServer, run_dir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """nginx with the configuration the CLI prints; (process, URL, its downloads log)."""
    run_dir.mkdir()
    port = postgres.free_port()
    log = run_dir / "downloads.log"
    options = ["--standalone", str(run_dir), "--listen", f"127.0.0.1:{port}"]
    options += ["--upstream", server.url.removeprefix("http://"), "--downloads-log", str(log)]
    if os.geteuid() == 0:
        options += ["--user", "root"]  # the test's tree is readable by its owner only
    config = run_dir / "nginx.conf"
    config.write_text(server.cli("nginx-config", *options).stdout)
    errors = run_dir / "error.log"
    process = subprocess.Popen(
        ["nginx", "-c", str(config), "-p", str(run_dir), "-e", str(errors)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited:\n{errors.read_text() if errors.exists() else ''}")
        try:
            httpx.get(f"{url}/simple/", timeout=2)
            return process, url, log
        except httpx.TransportError:
            time.sleep(0.05)
    stop_process(process)
    raise AssertionError("nginx did not answer within 30 s")


def _pip_download(sandbox: Sandbox, index_url: str, project: str) -> None:
    target = sandbox.root / f"downloads{len(sandbox.runs)}"
    result = sandbox.run(
        "pip", "download", "--no-deps", "--index-url", index_url, "-d", target, project
    )
    assert result.returncode == 0, describe(result)


def _recent(server: LiveServer) -> dict[str, int]:
    answer = httpx.get(f"{server.url}/_/stats/main/stat-me/recent", timeout=30)
    assert answer.status_code == 200, answer.text
    data: dict[str, int] = answer.json()["data"]
    return data


def _import(server: LiveServer, log: Path) -> str:
    return server.cli("downloads", "import-log", str(log)).stdout


def test_pip_downloads_through_nginx_are_counted_from_its_log(
    live_server: LiveServer, tmp_path: Path
) -> None:
    need_nginx()
    server = live_server
    wheel = make_wheel("Stat_Me", "1.0")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert upload(http, wheel, server.token()).status_code == 200
    process, nginx, log = _start_nginx(server, tmp_path / "nginx")
    try:
        sandbox = Sandbox(tmp_path / "sandbox")
        _pip_download(sandbox, f"{nginx}/simple/", "stat-me")
        # pip took the wheel from nginx: a line in the downloads log, nothing in tilsit's.
        assert wheel.filename in log.read_text()
        time.sleep(6)  # past tilsit's own batch interval: it had nothing to count
        assert _recent(server) == {"last_day": 0, "last_week": 0, "last_month": 0}

        first = _import(server, log)
        assert "1 counted" in first, first
        assert _recent(server)["last_day"] == 1
        assert "read 0 line(s)" in _import(server, log)  # a second run adds nothing
        assert _recent(server)["last_day"] == 1

        # pip again from the same address the same day: a line, but no new count.
        _pip_download(sandbox, f"{nginx}/simple/", "stat-me")
        same = _import(server, log)
        assert "1 whole-file download(s), 0 counted" in same, same
        # Another client (127.0.0.2 is loopback too): appended, counted once.
        path = "/" + file_path(wheel.sha256, wheel.filename)
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        third = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3"))
        with other, third:
            assert other.get(f"{nginx}{path}").status_code == 200
            assert "1 counted" in _import(server, log)
            assert _recent(server)["last_day"] == 2
            # What does not count, from a client that never downloaded the whole file.
            assert third.get(f"{nginx}{path}", headers={"range": "bytes=0-9"}).status_code == 206
            assert third.head(f"{nginx}{path}").status_code == 200
            assert third.get(f"{nginx}{path}.metadata").status_code == 200
            cut = third.get(f"{nginx}{path}", headers={"range": "bytes=10-"})
            assert cut.status_code == 206
            uncounted = _import(server, log)
            # The range, HEAD and rest-of-file lines; .metadata files are not logged at all.
            assert "read 3 line(s)" in uncounted and "0 whole-file download(s)" in uncounted
        assert _recent(server)["last_day"] == 2
        overall = httpx.get(f"{nginx}/_/stats/main/stat-me/overall", timeout=30).json()
        assert [row["downloads"] for row in overall["data"]] == [2, 2]
    finally:
        stop_process(process)


def test_a_private_index_files_through_nginx_count_for_readers_only(
    live_server: LiveServer, tmp_path: Path
) -> None:
    need_nginx()
    server = live_server
    server.cli("index", "create", "team", "--private")
    token = server.token()
    server.cli("index", "grant", "team", "alice", "create")
    wheel = make_wheel("Team_Tool", "1.0")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert upload(http, wheel, token, "/team/legacy/").status_code == 200
    process, nginx, log = _start_nginx(server, tmp_path / "nginx")
    try:
        sandbox = Sandbox(tmp_path / "sandbox")
        index = f"http://__token__:{token}@{nginx.removeprefix('http://')}/team/simple/"
        _pip_download(sandbox, index, "team-tool")
        refused = httpx.get(f"{nginx}/team/" + file_path(wheel.sha256, wheel.filename))
        assert refused.status_code == 401  # logged elsewhere: the downloads log has the 200
        assert "1 counted" in _import(server, log)
        url = f"{server.url}/_/stats/team/team-tool/recent"
        readable = httpx.get(url, auth=("__token__", token), timeout=30)
        assert readable.json()["data"]["last_day"] == 1
        anonymous = httpx.get(url, timeout=30)
        assert anonymous.status_code == 404 and "data" not in anonymous.json()
    finally:
        stop_process(process)
