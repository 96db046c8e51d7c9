"""Fixtures of the proxy tests: a real tilsit upstream, a front per test, a proxy per test.

Two tilsit servers serve the whole package: the upstream, with a few uploaded
projects, and the downstream. Each test puts its own
:class:`~tests.proxy.front.Front` before the upstream, so counting what the proxy
asked for is exact, and adds a proxy index of that front to the downstream
(servers take seconds to start here; an index, milliseconds).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.blobs import blob_stored
from tests.builders import Dist, make_sdist, make_wheel
from tests.conftest import LiveServer, create_database, make_settings, start_server, stop
from tests.proxy.front import Front
from tests.uploads import upload
from tilsit.config import Settings
from tilsit.index.manage import create_index
from tilsit.instance import open_instance
from tilsit.store.tree import file_path

JSON = "application/vnd.pypi.simple.v1+json"
# The proxy's upstream client honours *_PROXY variables: keep 127.0.0.1 direct.
_DIRECT = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@dataclass(frozen=True)
class Corpus:
    """What the upstream has."""

    alpha: tuple[Dist, ...]  # px-alpha: two wheels and an sdist
    big: Dist  # px-big: a 3 MiB wheel, streamed in many chunks (the corruption test's)
    bulk: Dist  # px-bulk: the same size (the concurrency test's)
    bad: Dist  # px-bad: 1 MiB, for clients to see a corrupt upstream file
    # Per client: <client>-top 1.0 requiring <client>-dep>=1.0, and <client>-dep 1.1,
    # what a resolver picks (1.0 is there too).
    installs: dict[str, tuple[Dist, Dist]]

    def by_name(self, filename: str) -> Dist:
        for dist in (*self.alpha, self.big, self.bulk):
            if dist.filename == filename:
                return dist
        raise KeyError(filename)


@dataclass
class Upstream:
    live: LiveServer
    corpus: Corpus
    token: str

    @property
    def url(self) -> str:
        return self.live.url

    def upload(self, dist: Dist) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            response = upload(client, dist, self.token)
        assert response.status_code == 200, f"set-up upload failed: {response.text}"


@pytest.fixture(scope="package")
def upstream(
    postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Upstream]:
    root = tmp_path_factory.mktemp("upstream")
    settings = make_settings(root / "data", create_database(postgres_base))
    live = start_server(settings, root / "server.log")
    corpus = Corpus(
        alpha=(
            make_wheel("px-alpha", "1.0"),
            make_sdist("px-alpha", "1.0"),
            make_wheel("px-alpha", "1.1"),
        ),
        big=make_wheel("px-big", "1.0", members={"px_big/blob.bin": os.urandom(3 << 20)}),
        bulk=make_wheel("px-bulk", "1.0", members={"px_bulk/blob.bin": os.urandom(3 << 20)}),
        bad=make_wheel("px-bad", "1.0", members={"px_bad/blob.bin": os.urandom(1 << 20)}),
        installs={
            client: (
                make_wheel(f"{client}-top", "1.0", requires_dist=[f"{client}-dep>=1.0"]),
                make_wheel(f"{client}-dep", "1.1"),
            )
            for client in ("pip", "uv")
        },
    )
    # A bulk token: the package's tests add projects of their own to this upstream.
    server = Upstream(live, corpus, live.token(bulk=True))
    for dist in (*corpus.alpha, corpus.big, corpus.bulk, corpus.bad):
        server.upload(dist)
    for client, (top, dep) in corpus.installs.items():
        for dist in (make_wheel(f"{client}-dep", "1.0"), dep, top):
            server.upload(dist)
    yield server
    stop(live)


@pytest.fixture
def front(upstream: Upstream) -> Iterator[Front]:
    started = Front(upstream.url).start()
    yield started
    started.stop()


@dataclass(frozen=True)
class Downstream:
    live: LiveServer
    log: Path


@pytest.fixture(scope="package")
def downstream(
    postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Downstream]:
    """One tilsit server for the package; each test adds a proxy index of its own to it."""
    root = tmp_path_factory.mktemp("downstream")
    settings = make_settings(root / "data", create_database(postgres_base))
    log = root / "server.log"
    live = start_server(settings, log, env=_DIRECT)
    yield Downstream(live, log)
    stop(live)


@dataclass
class Proxy:
    """A proxy index of the downstream server, whose upstream is a test's front."""

    live: LiveServer
    index: str
    log: Path

    def logged(self, text: str) -> bool:
        """Whether the downstream server logged ``text`` (a line of this index's starts so)."""
        return f"{self.index}: {text}" in self.log.read_text()

    @property
    def url(self) -> str:
        return self.live.url

    @property
    def settings(self) -> Settings:
        return self.live.settings

    @property
    def simple_url(self) -> str:
        return f"{self.url}/{self.index}/simple/"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET ``path``; ``/simple/...`` and ``/pypi/...`` are taken as this index's."""
        if path.startswith(("/simple/", "/pypi/")):
            path = f"/{self.index}{path}"
        headers = {"Accept": JSON, **kwargs.pop("headers", {})}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def page(self, project: str) -> dict[str, Any]:
        response = self.get(f"/simple/{project}/")
        assert response.status_code == 200, response.text
        document: dict[str, Any] = json.loads(response.content)
        return document

    def file_url(self, dist: Dist) -> str:
        return f"/{file_path(dist.sha256, dist.filename)}"

    def in_tree(self, relative: str) -> bool:
        return (self.settings.tree_dir / relative.lstrip("/")).is_file()

    def blob_stored(self, sha256: str) -> bool:
        return blob_stored(self.settings, sha256)


MakeProxy = Callable[..., Proxy]
_indexes = itertools.count()


@pytest.fixture
def make_proxy(downstream: Downstream) -> MakeProxy:
    """``make_proxy(upstream_url, **options)``: a new proxy index on the running downstream.

    The tree (and blob store) is shared by the package's tests: a test that
    counts file fetches uses files of its own.
    """

    def make(upstream_url: str, **options: Any) -> Proxy:
        name = f"px{next(_indexes)}"
        instance = open_instance(downstream.live.settings)
        try:
            with instance.db.write() as session:
                create_index(
                    session,
                    name,
                    "proxy",
                    actor="test",
                    options={"upstream": f"{upstream_url}/simple/", **options},
                )
            instance.renderer.catch_up()
        finally:
            instance.close()
        return Proxy(downstream.live, name, downstream.log)

    return make
