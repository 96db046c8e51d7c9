"""Slow clients against a live ``tilsit serve`` with a low open-files limit.

Before: 900 connections that trickled their headers or bodies used up the file
descriptors, and every normal request got a 500. Now a connection past
``max_connections`` is answered 503 and closed, headers must arrive within
``header_timeout``, bodies within ``body_idle_timeout``/``body_timeout``, and the
temp files of uploads in progress are bounded by ``upload_temp_max``.
"""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import LiveServer, start_server, stop
from tests.uploads import form_for
from tilsit.config import Settings

FD_LIMIT = 256
TRICKLERS = 300


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.fixture
def limited(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    """``tilsit serve`` with RLIMIT_NOFILE 256 and short deadlines."""
    env = {
        "TILSIT_MAX_CONNECTIONS": "100",
        "TILSIT_HEADER_TIMEOUT": "2",
        "TILSIT_BODY_IDLE_TIMEOUT": "2",
        "TILSIT_BODY_TIMEOUT": "6",
        "TILSIT_UPLOAD_TEMP_MAX": str(96 * 1024),
        "TILSIT_ACCESS_LOG": "false",
    }
    server = start_server(settings, tmp_path / "limited.log", env=env, preexec_fn=_low_fd_limit)
    yield server
    stop(server)


def _trickle(url: str, opening: bytes, stop_at: float, sockets: list[socket.socket]) -> None:
    """Open a connection, send ``opening``, then one byte every half second until ``stop_at``."""
    host, port = url.removeprefix("http://").split(":")
    try:
        sock = socket.create_connection((host, int(port)), timeout=5)
    except OSError:
        return
    sockets.append(sock)
    try:
        sock.sendall(opening)
        while time.monotonic() < stop_at:
            time.sleep(0.5)
            sock.sendall(b"x")
    except OSError:
        pass  # closed by the server: what the deadlines are for


def _normal_requests(url: str, until: float) -> list[int]:
    statuses = []
    with httpx.Client(base_url=url, timeout=10) as http:
        while time.monotonic() < until:
            try:
                statuses.append(http.get("/simple/").status_code)
            except httpx.TransportError as exc:
                statuses.append(-1)
                print("transport error", exc)
            time.sleep(0.2)
    return statuses


def test_trickling_clients_never_make_normal_requests_fail(limited: LiveServer) -> None:
    url = limited.url
    stop_at = time.monotonic() + 8
    sockets: list[socket.socket] = []
    head = b"GET /simple/ HTTP/1.1\r\nHost: x\r\nX-Slow: "
    body = (
        b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Authorization: Basic X190b2tlbl9fOnRpbHNpdC14\r\nContent-Length: 100000\r\n\r\n"
    )
    threads = [
        threading.Thread(
            target=_trickle, args=(url, head if i % 3 else body, stop_at, sockets), daemon=True
        )
        for i in range(TRICKLERS)
    ]
    try:
        for thread in threads:
            thread.start()
        statuses = _normal_requests(url, stop_at + 4)
    finally:
        for thread in threads:
            thread.join(timeout=10)
        for sock in sockets:
            sock.close()
    assert statuses, "no normal request was made"
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[-1] == 200  # once the deadlines closed the tricklers
    assert httpx.get(f"{url}/simple/", timeout=10).status_code == 200
    assert (
        "Too many open files"
        not in Path(limited.settings.data / "..").joinpath("limited.log").read_text()
    )


def test_a_slow_upload_body_is_cut_and_its_temp_file_dropped(limited: LiveServer) -> None:
    url = limited.url
    host, port = url.removeprefix("http://").split(":")
    token = limited.token()
    wheel = make_wheel("slow", "1.0")
    fields = form_for(wheel)
    boundary = "tilsitboundary"
    preamble = (
        "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        ).encode()
        + (
            f'--{boundary}\r\nContent-Disposition: form-data; name="content";'
            f' filename="{wheel.filename}"\r\n\r\n'
        ).encode()
    )
    auth = httpx.BasicAuth("__token__", token)._auth_header
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"POST /legacy/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(preamble) + 10_000_000}\r\n\r\n".encode()
            + preamble
            + b"\0" * 40_000
        )
        tmp = limited.settings.tmp_dir
        # The temp file exists while the client sends...
        deadline = time.monotonic() + 5
        while not list(tmp.glob("upload-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(tmp.glob("upload-*"))
        # ...a second upload past the temp-file budget is refused...
        second = preamble + b"\0" * 70_000 + f"\r\n--{boundary}--\r\n".encode()
        response = httpx.post(
            f"{url}/legacy/",
            content=second,
            headers={
                "Authorization": auth,
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            timeout=30,
        )
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "10"
        assert "Too many uploads in progress" in response.text
        # ...and the first, silent past body_idle_timeout, is answered 408 and dropped.
        sock.settimeout(20)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert time.monotonic() - started < 15
    assert list(limited.settings.tmp_dir.glob("upload-*")) == []


def test_a_chunked_form_to_a_web_page_is_refused_past_the_cap(limited: LiveServer) -> None:
    host, port = limited.url.removeprefix("http://").split(":")
    chunk = b"a=" + b"x" * 65534
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /account/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        try:
            for _ in range(64):  # 4 MiB, four times the cap
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server stopped reading: refused
        try:
            while len(answer) < 8192 and (more := sock.recv(4096)):
                answer += more
        except ConnectionResetError:
            pass  # closed while bytes of ours were still unread: the answer came first
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
