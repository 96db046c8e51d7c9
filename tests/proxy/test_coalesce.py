"""Proxy fills that finish together share one write and one catch-up; what a client got
is durable, and a kill inside a batch heals at the restart."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.blobs import blob_stored
from tests.builders import Dist, make_wheel
from tests.conftest import LiveServer, create_database, start_server, stop
from tests.proxy.conftest import JSON, MakeProxy, Proxy, Upstream
from tests.proxy.front import Fault, Front
from tests.proxy.test_files import eventually
from tilsit.config import load_settings
from tilsit.db.engine import Database
from tilsit.db.models import FileRow
from tilsit.index.manage import create_index
from tilsit.instance import open_instance
from tilsit.store.tree import PAGE_JSON

_DIRECT = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def _together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` for each i in threads that start at once; the results (or errors) in order."""
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - the caller's assertion shows it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    return results


def _timestamp_version(proxy: Proxy) -> int:
    """The version of the index's TUF timestamp: one more for each signing round."""
    answer = httpx.get(f"{proxy.url}/{proxy.index}/tuf/timestamp.json", timeout=30)
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["signed"]["version"]
    return version


def _proxy_writes(proxy: Proxy) -> dict[str, int]:
    """The server's count of proxy fills, write transactions and catch-ups (/_/health)."""
    answer = httpx.get(f"{proxy.url}/_/health", timeout=30)
    assert answer.status_code == 200, answer.text
    counts: dict[str, int] = answer.json()["proxy_writes"]
    return counts


def test_cold_pages_fetched_together_share_catch_ups_and_match_the_tree(
    upstream: Upstream, front: Front, make_proxy: MakeProxy
) -> None:
    # Six new projects: the upstream allows its uploader 20 a hour, and the package uses 13.
    names = [f"px-together-{i}" for i in range(6)]
    for name in names:
        upstream.upload(make_wheel(name, "1.0"))
    proxy = make_proxy(front.url)
    rounds_before = _timestamp_version(proxy)
    before = _proxy_writes(proxy)
    # Every upstream page answers after the same pause, so the fetches finish together.
    front.faults["/"] = Fault("hang", seconds=1.0)

    answers = _together(len(names), lambda i: proxy.get(f"/simple/{names[i]}/"))
    for name, answer in zip(names, answers, strict=True):
        assert isinstance(answer, httpx.Response), answer
        assert answer.status_code == 200, (name, answer.text)
        assert len(answer.json()["files"]) == 1, name
    assert len(front.requests("/")) == len(names)

    tree = proxy.settings.tree_dir / proxy.index / "simple"
    # The catch-up comes at the end of the burst; counted once it has signed too.
    eventually(
        lambda: (
            _proxy_writes(proxy)["catch_ups"] > before["catch_ups"]
            and all((tree / name / PAGE_JSON).is_file() for name in names)
        ),
        "the tree has the pages",
    )
    # Each answer was the page the tree holds: the same bytes, ETag and serial.
    for name, answer in zip(names, answers, strict=True):
        assert (tree / name / PAGE_JSON).read_bytes() == answer.content, name
        again = proxy.get(f"/simple/{name}/")
        assert again.headers["etag"] == answer.headers["etag"], name
        assert again.headers["x-pypi-last-serial"] == answer.headers["x-pypi-last-serial"], name
    # Six fills, fewer transactions and catch-ups, and a signing round per catch-up at most.
    after = _proxy_writes(proxy)
    fills, transactions, catch_ups = (
        after[k] - before[k] for k in ("fills", "transactions", "catch_ups")
    )
    assert fills >= len(names), after  # (a fill of the test before may end meanwhile)
    assert 1 <= transactions < fills, (before, after)
    assert 1 <= catch_ups < fills, (before, after)
    assert 1 <= _timestamp_version(proxy) - rounds_before <= catch_ups


def test_a_page_is_answered_once_durable_before_the_tree_has_it(
    front: Front, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(front.url)
    in_tree = proxy.settings.tree_dir / proxy.index / "simple" / "px-alpha" / PAGE_JSON
    answer = proxy.get("/simple/px-alpha/")
    assert answer.status_code == 200, answer.text
    # The render waits for the end of the burst (a second without a fill): the answer did not.
    assert not in_tree.exists(), "the answer waited for the render"
    again = proxy.get("/simple/px-alpha/")  # from the same bytes, until the tree has them
    assert again.content == answer.content
    eventually(in_tree.exists, "the tree has the page")
    assert in_tree.read_bytes() == answer.content
    tree_answer = proxy.get("/simple/px-alpha/")
    assert tree_answer.headers["etag"] == answer.headers["etag"]
    assert tree_answer.headers["x-pypi-last-serial"] == answer.headers["x-pypi-last-serial"]
    assert len(front.requests("/")) == 1


def test_a_file_stays_shared_until_the_tree_has_it(
    upstream: Upstream, front: Front, make_proxy: MakeProxy
) -> None:
    wheel = make_wheel(
        "px-shared-once", "1.0", members={"px_shared_once/b.bin": os.urandom(1 << 20)}
    )
    upstream.upload(wheel)
    proxy = make_proxy(front.url)
    proxy.page("px-shared-once")
    url = proxy.file_url(wheel)
    # One client after another, the second as soon as the first has the whole file.
    for _ in range(2):
        answer = proxy.get(url)
        assert answer.status_code == 200 and answer.content == wheel.data
    eventually(lambda: proxy.in_tree(url), "the file is linked into the tree")
    assert proxy.get(url).content == wheel.data
    assert len(front.requests(wheel.filename)) == 1


# -- a kill inside a batch --------------------------------------------------------------


@pytest.fixture
def own_server(postgres_base: str | None, tmp_path: Path) -> Iterator[LiveServer]:
    """A server of this test's own, to be killed."""
    settings = load_settings(
        overrides={"data": tmp_path / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    live = start_server(settings, tmp_path / "server.log", env=_DIRECT)
    yield live
    if live.process.poll() is None:
        stop(live)


def _add_proxy(live: LiveServer, upstream_url: str) -> str:
    instance = open_instance(live.settings)
    try:
        with instance.db.write() as session:
            create_index(
                session,
                "pk",
                "proxy",
                actor="test",
                options={"upstream": f"{upstream_url}/simple/"},
            )
        instance.renderer.catch_up()
    finally:
        instance.close()
    return "pk"


def _cached_files(live: LiveServer) -> set[str]:
    db = Database(live.settings.db_url)
    try:
        with db.read() as session:
            return {
                row.filename
                for row in session.query(FileRow).filter(FileRow.cached.is_(True)).all()
            }
    finally:
        db.dispose()


def test_a_file_a_client_got_whole_survives_a_kill_inside_the_batch(
    upstream: Upstream, front: Front, own_server: LiveServer, tmp_path: Path
) -> None:
    # Versions of one project (the upstream limits new projects per hour).
    dists: list[Dist] = [
        make_wheel("px-killed", f"1.{i}", members={"px_killed/b.bin": os.urandom(256 << 10)})
        for i in range(5)
    ]
    for dist in dists:
        upstream.upload(dist)
        # The first arrives whole at once; the others are still coming when it is done.
        front.faults[dist.filename] = Fault("slow", seconds=0.2 if dist is dists[0] else 3.0)
    index = _add_proxy(own_server, front.url)
    base = own_server.url
    page = httpx.get(f"{base}/{index}/simple/px-killed/", headers={"Accept": JSON}, timeout=30)
    assert page.status_code == 200, page.text
    paths = {f["filename"]: f["url"] for f in json.loads(page.content)["files"]}
    assert set(paths) == {dist.filename for dist in dists}

    whole: list[str] = []
    first_done = threading.Event()

    def download(i: int) -> None:
        dist = dists[i]
        try:
            answer = httpx.get(f"{base}{paths[dist.filename]}", timeout=60)
        except httpx.HTTPError:
            return  # cut by the kill
        if answer.status_code == 200 and answer.content == dist.data:
            whole.append(dist.filename)
            first_done.set()

    threads = [threading.Thread(target=download, args=(i,)) for i in range(len(dists))]
    for thread in threads:
        thread.start()
    assert first_done.wait(30), "no file arrived whole"
    os.kill(own_server.process.pid, signal.SIGKILL)  # the others' fills are under way
    own_server.process.wait(timeout=10)
    for thread in threads:
        thread.join(60)
    assert whole, "no client got a whole file"
    fetched = {dist.filename: len(front.requests(dist.filename)) for dist in dists}

    # What a client got whole is durable: its row says cached and its blob is stored.
    cached = _cached_files(own_server)
    for filename in whole:
        assert filename in cached, filename
        dist = next(d for d in dists if d.filename == filename)
        assert blob_stored(own_server.settings, dist.sha256), filename

    # The restart's catch-up brings the tree up to the journal: the files are linked,
    # the pages whole, nothing fetched again for what was stored.
    front.faults.clear()
    restarted = start_server(own_server.settings, tmp_path / "restart.log", env=_DIRECT)
    try:
        tree = own_server.settings.tree_dir
        for filename in whole:
            assert (tree / paths[filename].lstrip("/")).is_file(), filename
        page = httpx.get(
            f"{restarted.url}/{index}/simple/px-killed/", headers={"Accept": JSON}, timeout=30
        )
        assert page.status_code == 200, page.text
        for dist in dists:
            answer = httpx.get(f"{restarted.url}{paths[dist.filename]}", timeout=60)
            assert answer.status_code == 200 and answer.content == dist.data, dist.filename
        for filename in whole:
            assert len(front.requests(filename)) == fetched[filename], filename
        serial = (tree / ".serial").read_text().strip()
        assert int(serial) > 0
    finally:
        stop(restarted)
