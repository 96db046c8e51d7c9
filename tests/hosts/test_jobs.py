"""Scheduled mirror syncs run once across the hosts sharing a database.

Two hosts run the same schedule. The upstream holds its root page for a few
seconds, so the first host's sync is still running when the second host's
schedule looks: without the cluster lock both would sync (the root page fetched
twice, two syncs in flight); with it, one sync runs and both hosts serve its result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.hosts.conftest import Cluster, served, wait_for
from tests.hosts.upstream import CountingUpstream
from tests.upstream.conftest import make_mirror
from tilsit.instance import open_instance


@pytest.fixture
def slow_upstream(tmp_path: Path) -> Iterator[CountingUpstream]:
    upstream = CountingUpstream(tmp_path / "upstream", slow=("/simple/",), delay=3.0)
    yield upstream
    upstream.stop()


def test_a_scheduled_sync_runs_on_one_host(
    cluster: Cluster, slow_upstream: CountingUpstream
) -> None:
    for n in range(3):
        slow_upstream.tree.add(f"mirrored-{n}", make_wheel(f"mirrored-{n}", "1.0"))
    # The mirror is made before the hosts start, so both find it due at once.
    instance = open_instance(cluster.settings("a"))
    try:
        make_mirror(instance, f"{slow_upstream.url}/simple/", interval=3600)
    finally:
        instance.close()
    a = cluster.start("a")
    b = cluster.start("b")
    for host in (a, b):
        wait_for(lambda host=host: served(f"{host.url}/mirror/simple/mirrored-2/"), timeout=60)

    def status_ok(url: str) -> bool:
        answer = httpx.get(f"{url}/mirror/mirror-status.json", timeout=5)
        return answer.status_code == 200 and bool(answer.json().get("last_success"))

    for host in (a, b):
        wait_for(lambda host=host: status_ok(host.url), timeout=30)
    time.sleep(1)  # a second sync would have fetched the root by now (it starts with it)
    assert slow_upstream.counts["/simple/"] == 1, slow_upstream.counts
    assert slow_upstream.most_in_flight == 1
    logs = [(cluster.root / f"{name}.log").read_text() for name in ("a", "b")]
    assert sum("scheduled sync" in log and "failed" in log for log in logs) == 0, logs
