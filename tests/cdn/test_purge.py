"""The purge hook through a real `tilsit serve`: uploads and yanks purge the keys they
changed, a failing CDN is retried after the next render, and nothing blocks an upload."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.cdn.sink import PurgeSink, purge_sink
from tests.conftest import LiveServer, run_cli, start_server, stop
from tests.uploads import upload
from tilsit.config import Settings


@pytest.fixture
def sink() -> Iterator[PurgeSink]:
    with purge_sink() as s:
        yield s


def _serve(settings: Settings, tmp_path: Path, sink: PurgeSink, style: str) -> LiveServer:
    return start_server(
        settings,
        tmp_path / "server.log",
        env={
            "TILSIT_PURGE_URL": f"{sink.url}/purge",
            "TILSIT_PURGE_STYLE": style,
            "TILSIT_PURGE_METHOD": "PURGE" if style == "url" else "POST",
            "TILSIT_PURGE_TOKEN": "sekrit",
            "TILSIT_PURGE_TIMEOUT": "2",
        },
    )


def test_upload_and_yank_purge_the_index_and_project_keys(
    settings: Settings, tmp_path: Path, sink: PurgeSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = _serve(settings, tmp_path, sink, "surrogate-key")
    try:
        # A first start purges nothing older than itself: only the index it created.
        sink.wait_for(lambda: sink.purged_keys() == {"index:main"}, "of the new index")
        with sink.lock:
            sink.received.clear()
        with httpx.Client(base_url=server.url) as http:
            assert upload(http, make_wheel("Foo.Bar", "1.0"), server.token()).status_code == 200
        sink.wait_for(lambda: "project:main/foo-bar" in sink.purged_keys(), "of the project")
        assert {"list:main", "tuf:main"} <= sink.purged_keys()
        first = sink.received[0]
        assert first.method == "POST"
        assert first.path == "/purge"
        assert first.headers["fastly-key"] == "sekrit"
        assert (
            "index:main" not in sink.purged_keys()
        )  # an upload leaves the rest of the index cached

        with sink.lock:
            sink.received.clear()
        # A yank by a command, in its own process: purged before it exits.
        monkeypatch.setenv("TILSIT_PURGE_URL", f"{sink.url}/purge")
        run_cli(settings, "yank", "foo-bar", "1.0", "--reason", "broken")
        assert "project:main/foo-bar" in sink.purged_keys()
    finally:
        stop(server)


def test_a_failing_purge_is_retried_after_the_next_render(
    settings: Settings, tmp_path: Path, sink: PurgeSink
) -> None:
    sink.status = 503
    server = _serve(settings, tmp_path, sink, "surrogate-key")
    try:
        token = server.token()
        with httpx.Client(base_url=server.url) as http:
            started = time.monotonic()
            assert upload(http, make_wheel("first", "1.0"), token).status_code == 200
            sink.wait_for(lambda: "project:main/first" in sink.purged_keys(), "attempted")
            mark = int((settings.data / "purge.serial").read_text())
            sink.status = 200
            with sink.lock:
                sink.received.clear()
            assert upload(http, make_wheel("second", "1.0"), token).status_code == 200
            assert time.monotonic() - started < 30
        # The refused keys are sent again, with the new ones, and the mark moves past both.
        sink.wait_for(
            lambda: {"project:main/first", "project:main/second"} <= sink.purged_keys(), "retried"
        )
        sink.wait_for(
            lambda: int((settings.data / "purge.serial").read_text()) > mark, "marked done"
        )
    finally:
        stop(server)


def test_a_slow_cdn_never_holds_an_upload(settings: Settings, tmp_path: Path) -> None:
    # A port that accepts and never answers: the purge times out on its own thread.
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        port = silent.getsockname()[1]
        server = start_server(
            settings,
            tmp_path / "server.log",
            env={"TILSIT_PURGE_URL": f"http://127.0.0.1:{port}/", "TILSIT_PURGE_TIMEOUT": "30"},
        )
        try:
            with httpx.Client(base_url=server.url, timeout=20) as http:
                token = server.token()
                for version in ("1.0", "1.1"):
                    started = time.monotonic()
                    assert upload(http, make_wheel("slow", version), token).status_code == 200
                    assert time.monotonic() - started < 10
                assert http.get("/simple/slow/?format=json").json()["versions"] == ["1.0", "1.1"]
        finally:
            stop(server)
    finally:
        silent.close()


def test_url_style_purges_each_changed_url(
    settings: Settings, tmp_path: Path, sink: PurgeSink
) -> None:
    server = _serve(settings, tmp_path, sink, "url")
    try:
        with httpx.Client(base_url=server.url) as http:
            assert upload(http, make_wheel("foo", "1.0"), server.token()).status_code == 200

        def paths() -> set[str]:
            with sink.lock:
                return {p.path for p in sink.received}

        wanted = {
            "/purge/main/simple/foo/",
            "/purge/simple/foo/",  # the default index's root paths too
            "/purge/main/pypi/foo/json",
            "/purge/pypi/foo/json",
            "/purge/main/simple/",
            "/purge/simple/",
        }
        sink.wait_for(lambda: wanted <= paths(), "by URL")
        assert {p.method for p in sink.received} == {"PURGE"}
    finally:
        stop(server)


def test_no_purge_url_no_follower(settings: Settings, tmp_path: Path) -> None:
    server = start_server(settings, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url) as http:
            assert upload(http, make_wheel("foo", "1.0"), server.token()).status_code == 200
        assert not (settings.data / "purge.serial").exists()
    finally:
        stop(server)
    assert os.environ.get("TILSIT_PURGE_URL") is None
