"""A tilsit upstream over TLS (test CA) with absolute file URLs, as mirror clients see it.

Each module gets one server; ``base_url`` is set (``TILSIT_BASE_URL``) to the URL the
server answers on, so pages carry absolute file URLs as PyPI's do.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import sqlalchemy

from tests.builders import Dist
from tests.conftest import LiveServer, create_database, start_tls_server, stop
from tests.uploads import upload
from tilsit.config import load_settings
from tilsit.db.engine import Database
from tilsit.db.models import IndexRow, JournalRow

JSON = "application/vnd.pypi.simple.v1+json"
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


@dataclass
class Upstream:
    """A live tilsit server on https://127.0.0.1:<port> and the CA that signed its cert."""

    live: LiveServer
    ca_pem: Path
    context: ssl.SSLContext
    log: Path

    @property
    def url(self) -> str:
        return self.live.url

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.context, timeout=30)

    def mark(self) -> int:
        """A position in the access log, for :meth:`requests`."""
        return self.log.stat().st_size

    def requests(self, since: int) -> list[tuple[str, str, int]]:
        """(method, path, status) of each request logged after ``since``."""
        with self.log.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace")
        return [
            (m["method"], unquote(m["target"].split("?", 1)[0]), int(m["status"]))
            for m in _ACCESS.finditer(text)
        ]

    def upload(self, *dists: Dist) -> None:
        token = self.live.token()
        with self.http() as client:
            for dist in dists:
                response = upload(client, dist, token)
                assert response.status_code == 200, f"upload failed: {response.text}"

    def root(self) -> tuple[httpx.Response, dict[str, Any]]:
        """``/simple/`` as PEP 691 JSON: the response (for its headers) and the document."""
        with self.http() as client:
            response = client.get("/simple/", headers={"Accept": JSON})
        assert response.status_code == 200, response.text
        doc: dict[str, Any] = response.json()
        return response, doc

    def serial(self) -> int:
        """The index's current serial, as the root JSON states it."""
        return int(self.root()[1]["meta"]["_last-serial"])

    def journal_serial(self) -> int:
        """The last serial the journal gave the default index (read from the database)."""
        db = Database(self.live.settings.db_url)
        try:
            with db.read() as session:
                last = session.scalar(
                    sqlalchemy.select(sqlalchemy.func.max(JournalRow.serial))
                    .join(IndexRow, JournalRow.index_id == IndexRow.id)
                    .where(IndexRow.name == self.live.settings.default_index)
                )
        finally:
            db.dispose()
        return int(last or 0)

    def page(self, project: str) -> dict[str, Any]:
        with self.http() as client:
            response = client.get(f"/simple/{project}/", headers={"Accept": JSON})
        assert response.status_code == 200, response.text
        doc: dict[str, Any] = response.json()
        return doc


@pytest.fixture(scope="module")
def upstream(
    postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Upstream]:
    root = tmp_path_factory.mktemp("upstream")
    settings = load_settings(
        overrides={"data": root / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    log = root / "server.log"
    tls = start_tls_server(settings, log, root / "tls")
    yield Upstream(tls.live, tls.ca_pem, tls.context, log)
    stop(tls.live)
