"""One corpus, two servers: tilsit's own and nginx with the shipped config, over one tree.

The corpus is loaded once per module through a real ``tilsit serve`` (real
uploads, a real ``tilsit yank``); the ``target`` fixture then yields tilsit
itself, and nginx (rendered by :mod:`tilsit.nginx`, on a free port) in front
of the same tree with tilsit as its upstream.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests import postgres
from tests.builders import Dist, make_sdist, make_wheel
from tests.conftest import LiveServer, create_database, need, start_server, stop_process
from tests.uploads import upload
from tilsit.config import Settings, load_settings
from tilsit.config.cache_control import CacheControl
from tilsit.nginx import PERL_MODULE, render_standalone
from tilsit.store.tree import file_path


def _incompressible(size: int) -> bytes:
    """Deterministic bytes that deflate cannot shrink (so the wheel really is big)."""
    out = bytearray()
    block = b"tilsit"
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


@dataclass
class Corpus:
    tilsit: LiveServer
    token: str
    dists: dict[str, Dist] = field(default_factory=dict)  # by filename

    def path(self, filename: str) -> str:
        """URL path of a distribution file in the tree."""
        dist = self.dists[filename]
        return "/" + file_path(dist.sha256, dist.filename)


# (project name as uploaded, dist); the names are written the way users write them.
def _dists() -> list[tuple[str, Dist]]:
    return [
        ("Foo.Bar", make_wheel("Foo.Bar", "1.0", requires_python=">=3.8,<4")),
        ("Foo.Bar", make_sdist("Foo.Bar", "1.0", requires_python=">=3.8,<4")),
        ("Foo.Bar", make_wheel("Foo.Bar", "2.0rc1")),
        ("oldie", make_wheel("oldie", "1.0")),
        ("oldie", make_wheel("oldie", "1.1")),
        ("toggle", make_wheel("toggle", "1.0")),
        # Over 1 MiB: tilsit streams files above that size in chunks.
        ("big", make_wheel("big", "1.0", members={"big/blob.bin": _incompressible(1_200_000)})),
    ]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, postgres_base: str | None) -> Iterator[Corpus]:
    root = tmp_path_factory.mktemp("readpath")
    settings: Settings = load_settings(
        overrides={"data": root / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    server = start_server(settings, root / "tilsit.log")
    try:
        corpus = Corpus(server, server.token())
        server.cli("index", "create", "team")
        uploads = [(name, dist, "/legacy/") for name, dist in _dists()]
        uploads.append(("Internal_Tool", make_wheel("Internal_Tool", "0.1"), "/team/legacy/"))
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for name, dist, url in uploads:
                response = upload(client, dist, corpus.token, url, name=name)
                assert response.status_code == 200, response.text
                corpus.dists[dist.filename] = dist
        server.cli("yank", "oldie", "1.0", "--reason", 'broken <b>"&</b>')
        yield corpus
    finally:
        stop_process(server.process)


@dataclass
class Target:
    """One server to test: ``http`` sends no Accept header unless a test gives one."""

    name: str
    url: str
    http: httpx.Client
    reference: httpx.Client  # tilsit's own server, to compare against


def _client(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    del client.headers["accept"]
    return client


def start_nginx(
    tree: Path,
    upstream: str | None,
    run_dir: Path,
    default_index: str = "main",
    proxy_indexes: tuple[str, ...] = (),
    cache_control: CacheControl | None = None,
    files_from_tilsit: bool = False,
) -> tuple[subprocess.Popen[bytes], str]:
    """nginx in the foreground on a free port over ``tree``; (process, base URL)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    port = postgres.free_port()
    config = run_dir / "nginx.conf"
    config.write_text(
        render_standalone(
            tree,
            f"127.0.0.1:{port}",
            default_index,
            upstream,
            run_dir=run_dir,
            user="root" if os.geteuid() == 0 else None,
            proxy_indexes=proxy_indexes,
            cache_control=cache_control,
            files_from_tilsit=files_from_tilsit,
        )
    )
    log = run_dir / "error.log"
    process = subprocess.Popen(
        ["nginx", "-c", str(config), "-p", str(run_dir), "-e", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited:\n{log.read_text() if log.exists() else ''}")
        try:
            httpx.get(f"{url}/simple/", timeout=2)
            return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    stop_process(process)
    raise AssertionError(f"nginx did not answer within 30 s:\n{log.read_text()}")


def need_nginx() -> None:
    need(
        shutil.which("nginx") is not None and PERL_MODULE.exists(),
        "nginx with its Perl module (Debian: nginx libnginx-mod-http-perl)",
    )


@pytest.fixture(scope="module", params=["tilsit", pytest.param("nginx", marks=pytest.mark.nginx)])
def target(
    request: pytest.FixtureRequest, corpus: Corpus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    reference = _client(corpus.tilsit.url)
    if request.param == "tilsit":
        yield Target("tilsit", corpus.tilsit.url, reference, reference)
        reference.close()
        return
    need_nginx()
    run_dir = tmp_path_factory.mktemp("nginx")
    process, url = start_nginx(corpus.tilsit.settings.tree_dir, corpus.tilsit.url, run_dir)
    http = _client(url)
    try:
        yield Target("nginx", url, http, reference)
    finally:
        http.close()
        reference.close()
        stop_process(process)
        errors = [
            line
            for line in (run_dir / "error.log").read_text().splitlines()
            if "[error]" in line or "[crit]" in line or "[emerg]" in line or "[alert]" in line
        ]
        assert errors == [], "nginx logged errors"
