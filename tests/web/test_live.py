"""Behaviour that only a real server on a socket shows: reason phrases, early 413."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import LiveServer, start_server
from tests.uploads import upload
from tilsit.config import Settings

CAP = 200_000


@pytest.fixture
def small_cap_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(
        settings, tmp_path / "server.log", env={"TILSIT_MAX_UPLOAD_SIZE": str(CAP)}
    )
    yield server
    server.process.terminate()
    server.process.wait(timeout=20)


def test_file_exists_in_reason_phrase(live_server: LiveServer) -> None:
    token = live_server.token()
    with httpx.Client(base_url=live_server.url) as client:
        assert upload(client, make_wheel("foo", "1.0"), token).status_code == 200
        response = upload(client, make_wheel("foo", "1.0", summary="other"), token)
    assert response.status_code == 400
    # twine prints the reason phrase without --verbose.
    assert response.reason_phrase.startswith("File already exists")
    assert "File already exists" in response.text
    # Other statuses keep their standard phrase.
    with httpx.Client(base_url=live_server.url) as client:
        assert client.get("/simple/nope/").reason_phrase == "Not Found"


def test_oversized_upload_refused_before_the_body(small_cap_server: LiveServer) -> None:
    host, port = urlsplit(small_cap_server.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            "POST /legacy/ HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {10 * 1024 * 1024 * 1024}\r\n\r\n"
        )
        sock.sendall(head.encode())
        # No body has been sent: the answer must come from the headers alone.
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413 ")
    assert "limited to" in answer


def test_oversized_streamed_upload_is_413_and_stores_nothing(
    small_cap_server: LiveServer, settings: Settings
) -> None:
    token = small_cap_server.token()
    big = make_wheel("foo", "1.0", members={"foo/blob.bin": bytes(range(256)) * 2000})
    big.data += b"\0" * (CAP + 1)  # trailing bytes: the size check must trip before any parsing
    with httpx.Client(base_url=small_cap_server.url, timeout=30) as client:
        response = upload(client, big, token)
    assert response.status_code == 413
    assert [p for p in settings.blob_dir.rglob("*") if p.is_file()] == []
    assert list(settings.tmp_dir.iterdir()) == []


def test_reason_phrase_with_http_client(live_server: LiveServer) -> None:
    # The stdlib client shows exactly what is on the status line.
    token = live_server.token()
    with httpx.Client(base_url=live_server.url) as client:
        upload(client, make_wheel("foo", "1.0"), token)
        request = client.build_request(
            "POST",
            "/legacy/",
            data={
                ":action": "file_upload",
                "name": "foo",
                "version": "1.0",
                "filetype": "bdist_wheel",
                "sha256_digest": make_wheel("foo", "1.0", summary="x").sha256,
            },
            files={
                "content": ("foo-1.0-py3-none-any.whl", make_wheel("foo", "1.0", summary="x").data)
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    host, port = urlsplit(live_server.url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("POST", "/legacy/", body=request.read(), headers=dict(request.headers))
    response = connection.getresponse()
    assert response.status == 400
    assert response.reason.startswith("File already exists ('foo-1.0-py3-none-any.whl'")
    connection.close()
