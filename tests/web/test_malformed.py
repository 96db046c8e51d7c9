"""The malformed-request table of tests/readpath/test_malformed.py, against the in-process app.

The ASGI scope is built as uvicorn builds it (the path percent-decoded, invalid
UTF-8 replaced), so no HTTP client cleans the path first. An exception out of
the app is what a live server turns into a 500 or a dropped connection.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.readpath.test_malformed import MALFORMED
from tests.uploads import upload
from tilsit.instance import Instance
from tilsit.web.app import TilsitApp
from tilsit.web.asgi import Message


async def asgi_get(app: TilsitApp, raw_path: str, headers: str) -> int:
    head = [
        (name.strip().lower().encode(), value.strip().encode())
        for name, _, value in (line.partition(":") for line in headers.split("\r\n") if line)
    ]
    scope: dict[str, Any] = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "raw_path": raw_path.encode("ascii"),
        "path": unquote(raw_path),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *head],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
    started: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.append(message["status"])

    await app(scope, receive, send)
    assert len(started) == 1
    return started[0]


def test_malformed_requests_in_process(client: AppClient, token: str, instance: Instance) -> None:
    assert upload(client, make_wheel("foo-bar", "1.0"), token).status_code == 200
    wheel_path = client.get("/simple/foo-bar/?format=json").json()["files"][0]["url"]
    app = TilsitApp(instance)
    wrong = []
    for path, headers, allowed in MALFORMED:
        try:
            status = client.portal.call(asgi_get, app, path.replace("{file}", wheel_path), headers)
        except Exception as exc:  # noqa: BLE001 - collected: each row is reported
            wrong.append((path[:80], repr(exc)[:200]))
            continue
        if status not in allowed:
            wrong.append((path[:80], str(status)))
    assert wrong == []
