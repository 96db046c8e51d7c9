"""Fixtures of the mirror tests: live tilsit upstreams, downstream instances, page checks.

Every upstream runs on 127.0.0.1: a real ``tilsit serve`` (optionally over TLS
with a test CA and absolute file URLs, as PyPI's pages have), a static tree
(:mod:`tests.upstream.static`) or a fault-injecting proxy in front of a tilsit
(:mod:`tests.upstream.faulty`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.blobs import served_bytes
from tests.builders import Dist
from tests.conftest import (
    LiveServer,
    create_database,
    make_settings,
    settings_env,
    start_server,
    start_tls_server,
)
from tests.uploads import upload
from tilsit.cli import main
from tilsit.config import Settings
from tilsit.db.models import IndexRow, JournalRow, UpstreamStateRow
from tilsit.index.manage import create_index, get_index
from tilsit.instance import Instance, open_instance
from tilsit.store.tree import file_path
from tilsit.upstream.sync import Reporter, SyncReport, sync_mirror

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "text/html"
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


@dataclass
class Upstream:
    """A live tilsit server used as a mirror's upstream, with its access log."""

    live: LiveServer
    log: Path
    verify: ssl.SSLContext | bool = True
    ca_pem: Path | None = None

    @property
    def url(self) -> str:
        return self.live.url

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple/"

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.verify, timeout=30)

    def upload(self, *dists: Dist) -> None:
        token = self.live.token()
        with self.http() as client:
            for dist in dists:
                response = upload(client, dist, token)
                assert response.status_code == 200, f"upload failed: {response.text}"

    def get(self, path: str, accept: str = JSON) -> httpx.Response:
        with self.http() as client:
            return client.get(path, headers={"Accept": accept})

    def mark(self) -> int:
        return self.log.stat().st_size

    def change(self, action: Callable[[Session, IndexRow], object]) -> None:
        """Run ``action`` on the upstream's default index, as its CLI would (commit, render).

        In-process on the upstream's data directory: starting the CLI costs seconds.
        """
        instance = open_instance(self.live.settings, migrate=False)
        try:
            with instance.db.write() as session:
                action(session, get_index(session, self.live.settings.default_index))
            instance.renderer.catch_up()
        finally:
            instance.close()

    def requests(self, since: int) -> list[tuple[str, str, int]]:
        """(method, path, status) of the requests logged after ``since``."""
        with self.log.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace")
        return [
            (m["method"], m["target"].split("?", 1)[0], int(m["status"]))
            for m in _ACCESS.finditer(text)
        ]


def start_upstream(root: Path, postgres_base: str | None, *, tls: bool = False) -> Upstream:
    """A tilsit server; with ``tls``, HTTPS from a test CA and absolute file URLs."""
    settings = make_settings(root / "data", create_database(postgres_base))
    log = root / "server.log"
    if not tls:
        return Upstream(start_server(settings, log), log)
    tls = start_tls_server(settings, log, root / "tls")
    return Upstream(tls.live, log, tls.context, tls.ca_pem)


def downstream(root: Path, postgres_base: str | None) -> tuple[Settings, Instance]:
    settings = make_settings(root / "data", create_database(postgres_base))
    return settings, open_instance(settings)


@pytest.fixture
def mirror_instance(
    postgres_base: str | None, tmp_path: Path
) -> Iterator[tuple[Settings, Instance]]:
    settings, instance = downstream(tmp_path / "downstream", postgres_base)
    yield settings, instance
    instance.close()


def make_mirror(
    instance: Instance, upstream_url: str, name: str = "mirror", **options: Any
) -> None:
    with instance.db.write() as session:
        create_index(
            session, name, "mirror", actor="test", options={"upstream": upstream_url, **options}
        )
    instance.renderer.catch_up()


def sync(
    instance: Instance,
    name: str = "mirror",
    *,
    workers: int = 4,
    attempts: int = 3,
    backoff: float = 0.01,
    reporter: Reporter | None = None,
    **batching: Any,
) -> SyncReport:
    """One sync run; ``batching``: ``batch_size`` and ``batch_linger`` of :class:`MirrorSync`."""
    return asyncio.run(
        sync_mirror(
            instance,
            name,
            workers=workers,
            attempts=attempts,
            backoff=backoff,
            reporter=reporter,
            **batching,
        )
    )


def cli(settings: Settings, *args: str) -> Result:
    """``tilsit ARGS --data …`` in-process (the database URL passed as the CLI would get it)."""
    return CliRunner().invoke(
        main,
        [*args, "--data", str(settings.data)],
        env=settings_env(settings),
    )


class Notes:
    """A reporter that keeps what it is told, for assertions."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.total = -1

    def begin(self, total: int) -> None:
        self.total = total

    def project(self, name: str, outcome: str, *, failed: bool = False) -> None:
        self.lines.append(f"{name}: {outcome}")

    def note(self, message: str) -> None:
        self.lines.append(f"note: {message}")

    def end(self) -> None:
        pass


# -- looking at a mirror's tree ------------------------------------------------------

_FILE_URL = re.compile(rb'(?:https?://[^"/\s]+)?/packages/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/')


def without_urls(page: bytes) -> bytes:
    """A page with every file URL's origin and hash path cut to ``<files>/``."""
    return _FILE_URL.sub(b"<files>/", page)


def tree_page(
    instance: Instance, index: str, project: str | None, accept: str = JSON
) -> bytes | None:
    name = "index.v1.json" if accept == JSON else "index.html"
    where = f"{index}/simple/{project}/{name}" if project else f"{index}/simple/{name}"
    return instance.tree.read(where)


def tree_projects(instance: Instance, index: str) -> dict[str, int]:
    page = tree_page(instance, index, None)
    assert page is not None
    return {p["name"]: p["_last-serial"] for p in json.loads(page)["projects"]}


def tree_files(instance: Instance, index: str, project: str) -> dict[str, str]:
    """filename -> sha256 of what the mirror's page for ``project`` lists ({} without a page)."""
    page = tree_page(instance, index, project)
    if page is None:
        return {}
    return {f["filename"]: f["hashes"]["sha256"] for f in json.loads(page)["files"]}


def check_consistent(instance: Instance, index: str = "mirror") -> int:
    """Every page of ``index`` links only files present in the tree with the right hashes.

    Returns how many files were checked.
    """
    checked = 0
    for project in tree_projects(instance, index):
        page = tree_page(instance, index, project)
        assert page is not None, f"the root lists {project} but its page is missing"
        assert tree_page(instance, index, project, HTML) is not None
        for f in json.loads(page)["files"]:
            path = instance.tree.path(file_path(f["hashes"]["sha256"], f["filename"]))
            assert path.is_file(), f"{project}: {f['filename']} is listed but not in the tree"
            data = served_bytes(path, instance.blobs)
            assert hashlib.sha256(data).hexdigest() == f["hashes"]["sha256"]
            assert len(data) == f["size"]
            if f["core-metadata"]:
                meta = instance.tree.path(
                    file_path(f["hashes"]["sha256"], f["filename"]) + ".metadata"
                )
                assert meta.is_file(), f"{f['filename']}.metadata is promised but missing"
                digest = hashlib.sha256(meta.read_bytes()).hexdigest()
                assert digest == f["core-metadata"]["sha256"]
            checked += 1
    return checked


def state_of(instance: Instance, index: str = "mirror") -> UpstreamStateRow:
    with instance.db.read() as session:
        row = session.scalars(select(IndexRow).where(IndexRow.name == index)).one()
        state = session.get(UpstreamStateRow, row.id)
        assert state is not None
        session.expunge(state)
        return state


def journal_serial(instance: Instance, index: str = "mirror") -> int:
    with instance.db.read() as session:
        serial = session.scalar(
            select(func.max(JournalRow.serial))
            .join(IndexRow, JournalRow.index_id == IndexRow.id)
            .where(IndexRow.name == index)
        )
    return int(serial or 0)


def mirror_status(instance: Instance, index: str = "mirror") -> dict[str, Any]:
    raw = instance.tree.read(f"{index}/mirror-status.json")
    assert raw is not None
    doc: dict[str, Any] = json.loads(raw)
    return doc
