"""Two hosts asked at once for the same cold file of a proxy index fetch it from upstream once.

The upstream holds the file for two seconds, so both hosts' requests are in flight
together: the second host waits for the first one's fetch (a cluster lock per file)
and serves the blob it stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.hosts.conftest import Cluster
from tests.hosts.upstream import CountingUpstream
from tilsit.index.manage import create_index
from tilsit.instance import open_instance

_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


@pytest.fixture
def slow_files(tmp_path: Path) -> Iterator[CountingUpstream]:
    dist = make_wheel("cold-thing", "1.0")
    upstream = CountingUpstream(tmp_path / "upstream", slow=(f"/files/{dist.filename}",), delay=2.0)
    upstream.tree.add("cold-thing", dist)
    yield upstream
    upstream.stop()


def test_a_cold_file_is_fetched_once_for_two_hosts(
    cluster: Cluster, slow_files: CountingUpstream
) -> None:
    instance = open_instance(cluster.settings("a"))
    try:
        with instance.db.write() as session:
            create_index(
                session,
                "px",
                "proxy",
                actor="test",
                options={"upstream": f"{slow_files.url}/simple/"},
            )
        instance.renderer.catch_up()
    finally:
        instance.close()
    a = cluster.start("a")
    b = cluster.start("b")
    urls = []
    for host in (a, b):
        page = httpx.get(f"{host.url}/px/simple/cold-thing/", headers=_JSON, timeout=30)
        assert page.status_code == 200, page.text
        [entry] = page.json()["files"]
        urls.append(str(httpx.URL(f"{host.url}/px/simple/cold-thing/").join(entry["url"])))
    expected = entry["hashes"]["sha256"]

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda url: httpx.get(url, timeout=60), urls))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert hashlib.sha256(answer.content).hexdigest() == expected
    path = next(p for p in slow_files.counts if p.startswith("/files/"))
    assert slow_files.counts[path] == 1, slow_files.counts
    assert slow_files.most_in_flight == 1
