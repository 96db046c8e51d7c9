"""Fixtures of the real-client tests: one live server per module and a sandbox per test.

Starting a server per test would cost more than most of these tests take, so a module
shares one; each test works on project names of its own and asserts on the access-log
lines written while it ran (:meth:`Served.requests`).
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from tests.builders import Dist
from tests.clients.tools import Sandbox
from tests.conftest import LiveServer, create_database, make_settings, start_server
from tests.uploads import upload

_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+" (?P<status>\d{3})')
_JSON = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class Request:
    """One line of uvicorn's access log."""

    method: str
    path: str  # percent-decoded, without the query
    status: int


@dataclass
class Served:
    """A live server shared by a test module, with its access log."""

    live: LiveServer
    log: Path
    user: str = "alice"

    @property
    def url(self) -> str:
        return self.live.url

    @property
    def upload_url(self) -> str:
        return f"{self.url}/legacy/"

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple/"

    def token(self, *extra: str) -> str:
        """A fresh token of the module's user; ``extra`` are ``tilsit token create`` options."""
        return self.live.token(self.user, *extra)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.live.cli(*args)

    def mark(self) -> int:
        """A position in the access log; see :meth:`requests`."""
        return self.log.stat().st_size

    def requests(self, since: int) -> list[Request]:
        """The requests logged after ``since`` (uvicorn logs each one as its response starts)."""
        with self.log.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace")
        found = []
        for match in _ACCESS.finditer(text):
            path = unquote(match["target"].split("?", 1)[0])
            found.append(Request(match["method"], path, int(match["status"])))
        return found

    def upload(self, dist: Dist, token: str) -> None:
        """Upload directly over HTTP (set-up for a test that drives a client afterwards)."""
        with httpx.Client(base_url=self.url, timeout=60) as client:
            response = upload(client, dist, token)
        assert response.status_code == 200, f"set-up upload failed: {response.text}"

    def get(self, path: str, accept: str = _JSON) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{self.url}{path}", headers={"Accept": accept})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def page(self, project: str) -> dict[str, Any] | None:
        """The PEP 691 project page, or None when the server has no such project."""
        status, body = self.get(f"/simple/{project}/")
        if status == 404:
            return None
        assert status == 200, f"GET /simple/{project}/ answered {status}: {body!r}"
        page: dict[str, Any] = json.loads(body)
        return page

    def files(self, project: str) -> dict[str, str]:
        """filename -> sha256 of what the project page lists ({} when there is no page)."""
        page = self.page(project)
        if page is None:
            return {}
        return {f["filename"]: f["hashes"]["sha256"] for f in page["files"]}


@pytest.fixture(scope="module")
def served(postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("server")
    settings = make_settings(root / "data", create_database(postgres_base))
    log = root / "server.log"
    live = start_server(settings, log)
    yield Served(live, log)
    live.process.terminate()
    try:
        live.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        live.process.kill()


@pytest.fixture(scope="module")
def token(served: Served) -> str:
    """An upload token of the module's user, for any project."""
    return served.token()


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)
