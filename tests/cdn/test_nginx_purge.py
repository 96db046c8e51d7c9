"""The per-URL purge (``purge_style = "url"``) against a real nginx with ``ngx_cache_purge``:
a caching nginx in front of a real ``tilsit serve``, configured as docs/cdn.md shows, drops
the simple page an upload changed, while a second cache that is never purged keeps serving
the stale page (so the purge, not the cache's age, is what makes the change visible)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests import postgres
from tests.builders import make_wheel
from tests.conftest import LiveServer, need, start_server, stop, stop_process
from tests.uploads import upload
from tilsit.config import Settings

PURGE_MODULE = Path("/usr/lib/nginx/modules/ngx_http_cache_purge_module.so")
JSON = "application/vnd.pypi.simple.v1+json"

# docs/cdn.md's example, with test paths and ports; a second server caches the same origin
# in its own zone and is never purged.
CONFIG = """\
load_module {module};
{user}
worker_processes 1;
pid {run}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    proxy_cache_path {run}/cache keys_zone=tilsit:1m inactive=1d;
    proxy_cache_path {run}/control keys_zone=control:1m inactive=1d;

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {origin};
            proxy_cache tilsit;
            proxy_cache_key "$uri";
            add_header X-Cache-Status $upstream_cache_status always;
        }}
        location ~ ^/purge(/.*)$ {{
            allow 127.0.0.1;
            deny all;
            proxy_cache_purge tilsit "$1";
        }}
    }}
    server {{
        listen 127.0.0.1:{control_port};
        location / {{
            proxy_pass {origin};
            proxy_cache control;
            proxy_cache_key "$uri";
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"""


@dataclass
class Caches:
    tilsit: LiveServer
    purged: str  # nginx with the purge location tilsit's purge_url names
    control: str  # the same cache, never purged
    log: Path  # tilsit's
    nginx_log: Path


def _wait_for_port(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited:\n{log.read_text() if log.exists() else ''}")
        try:
            httpx.get(f"{url}/_/health", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"nginx did not answer within 30 s:\n{log.read_text()}")


@pytest.fixture
def caches(settings: Settings, tmp_path: Path) -> Iterator[Caches]:
    need(
        shutil.which("nginx") is not None and PURGE_MODULE.exists(),
        "nginx with ngx_cache_purge (Debian: nginx libnginx-mod-http-cache-purge)",
    )
    # Each side names the other: tilsit's purge_url the nginx, nginx's upstream tilsit.
    port, control_port, origin_port = (postgres.free_port() for _ in range(3))
    run = tmp_path / "nginx"
    run.mkdir()
    config = run / "nginx.conf"
    config.write_text(
        CONFIG.format(
            module=PURGE_MODULE,
            user="user root;" if os.geteuid() == 0 else "",
            run=run,
            port=port,
            control_port=control_port,
            origin=f"http://127.0.0.1:{origin_port}",
        )
    )
    log = run / "error.log"
    process = subprocess.Popen(
        ["nginx", "-c", str(config), "-p", str(run), "-e", str(log), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        server = start_server(
            settings,
            tmp_path / "server.log",
            port=origin_port,
            env={
                "TILSIT_PURGE_URL": f"http://127.0.0.1:{port}/purge",
                "TILSIT_PURGE_METHOD": "PURGE",
                "TILSIT_PURGE_STYLE": "url",
                "TILSIT_PURGE_TIMEOUT": "5",
            },
        )
        try:
            purged, control = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{control_port}"
            _wait_for_port(purged, process, log)
            yield Caches(server, purged, control, tmp_path / "server.log", log)
        finally:
            stop(server)
    finally:
        stop_process(process)


def _require_a_working_module(caches: Caches) -> None:
    """Debian bookworm's ngx_cache_purge (2.3) was written for the nginx structures before
    1.11.6: every purge request, hit or miss, kills the worker (SIGSEGV in
    ngx_http_file_cache_create_key), so the client sees the connection dropped."""
    try:
        answer = httpx.request("PURGE", f"{caches.purged}/purge/simple/not-cached/", timeout=10)
    except httpx.TransportError:
        if "exited on signal 11" in caches.nginx_log.read_text():
            pytest.xfail(
                "this ngx_cache_purge crashes the nginx worker on every purge"
                " (the 2.3 module on nginx >= 1.11.6; FRiCKLE/ngx_cache_purge#68)"
            )
        raise
    # tilsit counts a 404 as done (the URL was not cached); a module that answers a miss with
    # 412 (ngx_cache_purge >= 2.5 unless `cache_purge_legacy_status off`) fails every purge.
    assert answer.status_code == 404, (answer.status_code, answer.text)


def _files(http: httpx.Client, accept: str | None) -> tuple[list[str], str]:
    """The file names of foo-bar's simple page through a cache, and its cache status."""
    headers = {"Accept": accept} if accept else {}
    page = http.get("/simple/foo-bar/", headers=headers)
    assert page.status_code == 200, page.text
    if accept == JSON:
        names = [f["filename"] for f in page.json()["files"]]
    else:
        names = [name for name in ("foo_bar-1.0", "foo_bar-2.0") if name in page.text]
    return names, page.headers.get("x-cache-status", "")


@pytest.mark.nginx
@pytest.mark.parametrize("accept", [None, JSON], ids=["html", "json"])
def test_an_upload_purges_the_cached_simple_page(caches: Caches, accept: str | None) -> None:
    _require_a_working_module(caches)
    token = caches.tilsit.token()
    with (
        httpx.Client(base_url=caches.tilsit.url, timeout=30) as origin,
        httpx.Client(base_url=caches.purged, timeout=30) as purged,
        httpx.Client(base_url=caches.control, timeout=30) as control,
    ):
        assert upload(origin, make_wheel("foo-bar", "1.0"), token).status_code == 200
        for cache in (purged, control):
            _files(cache, accept)
            names, status = _files(cache, accept)
            assert status == "HIT" and len(names) == 1, (names, status)

        assert upload(origin, make_wheel("foo-bar", "2.0"), token).status_code == 200
        deadline = time.monotonic() + 30
        while True:
            names, status = _files(purged, accept)
            if len(names) == 2:
                break
            assert time.monotonic() < deadline, f"still {names} ({status}) after 30 s"
            time.sleep(0.2)
        # The cache nobody purged still serves the page from before the upload.
        names, status = _files(control, accept)
        assert status == "HIT" and len(names) == 1, (names, status)
    assert "CDN purge failed" not in caches.log.read_text()
