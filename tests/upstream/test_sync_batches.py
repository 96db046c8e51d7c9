"""A mirror sync applies its projects in batches: one transaction and one render per batch.

One real tilsit upstream over TLS (test CA, absolute file URLs, as PyPI's pages
are) with many small projects; each test syncs a fresh downstream mirror of it.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tests.builders import make_wheel
from tests.conftest import settings_env, stop
from tests.upstream.conftest import (
    Notes,
    Upstream,
    check_consistent,
    make_mirror,
    start_upstream,
    state_of,
    sync,
    tree_projects,
)
from tilsit.config import Settings
from tilsit.db.models import IndexRow, JournalRow, ProjectRow, UpstreamStateRow
from tilsit.instance import Instance

# 20: the upstream's project_create_rate lets one token create that many an hour.
PROJECTS = [f"proj-{n:02d}" for n in range(20)]


@pytest.fixture(scope="module")
def upstream(
    postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Upstream]:
    live = start_upstream(tmp_path_factory.mktemp("batch-upstream"), postgres_base, tls=True)
    try:
        live.upload(*(make_wheel(name, "1.0") for name in PROJECTS))
        yield live
    finally:
        stop(live.live)


@pytest.fixture
def mirror(upstream: Upstream, mirror_instance: tuple[Settings, Instance]) -> Instance:
    instance = mirror_instance[1]
    assert upstream.ca_pem is not None
    make_mirror(instance, upstream.simple_url, ca_bundle=str(upstream.ca_pem))
    return instance


def _upstream_serials(upstream: Upstream) -> dict[str, int]:
    root = upstream.get("/simple/").json()
    return {p["name"]: p["_last-serial"] for p in root["projects"]}


def _applied(instance: Instance) -> list[str]:
    with instance.db.read() as session:
        return list(
            session.scalars(
                select(ProjectRow.normalized)
                .join(IndexRow, ProjectRow.index_id == IndexRow.id)
                .where(IndexRow.name == "mirror", ProjectRow.deleted_at.is_(None))
                .order_by(ProjectRow.normalized)
            )
        )


def _started(instance: Instance) -> bool:
    """Whether a sync run recorded the upstream's serial (it is past its start)."""
    with instance.db.read() as session:
        state = session.scalar(
            select(UpstreamStateRow)
            .join(IndexRow, UpstreamStateRow.index_id == IndexRow.id)
            .where(IndexRow.name == "mirror")
        )
        return state is not None and state.upstream_serial is not None


def _everything_there(upstream: Upstream, instance: Instance) -> None:
    # A mirror of tilsit shows the upstream's exact serials.
    assert tree_projects(instance, "mirror") == _upstream_serials(upstream)
    assert check_consistent(instance) == len(PROJECTS)
    state = state_of(instance)
    assert state.synced_serial == state.upstream_serial


class Counted:
    """The mirror's real write transactions and renders, counted as they happen."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.writes = 0
        # The search index follows the journal after each render, in transactions of its
        # own: counted apart, so the sync's own writes stay what this test bounds.
        self.search_writes = 0
        # Shared TUF signing (on by default on PostgreSQL) stores what each round signed,
        # in a transaction of its own: counted apart too.
        self.signing_writes = 0
        self._local = threading.local()  # the follower's thread, not the sync's others
        self.renders: list[int] = []  # per render with work: the project rows it renders
        write, catch_up = instance.db.write, instance.renderer.catch_up

        @contextmanager
        def counted_write() -> Iterator[Session]:
            if getattr(self._local, "following", False):
                self.search_writes += 1
            elif getattr(self._local, "signing", False):
                self.signing_writes += 1
            else:
                self.writes += 1
            with write() as session:
                yield session

        def following(follower: Callable[[], object]) -> Callable[[], object]:
            def run() -> object:
                self._local.following = True
                try:
                    return follower()
                finally:
                    self._local.following = False

            return run

        instance.renderer.followers[:] = [following(f) for f in instance.renderer.followers]
        shared = instance.signing.shared
        if shared is not None:
            push = shared.push

            def counted_push(repo: Any) -> None:
                self._local.signing = True
                try:
                    push(repo)
                finally:
                    self._local.signing = False

            shared.push = counted_push  # type: ignore[method-assign]

        def counted_catch_up() -> int:
            pending = self._pending()
            if pending:
                self.renders.append(pending)
            return catch_up()

        self._write: Callable[[], AbstractContextManager[Session]] = counted_write
        instance.db.write = counted_write  # type: ignore[method-assign]
        instance.renderer.catch_up = counted_catch_up  # type: ignore[method-assign]

    def _pending(self) -> int:
        done = self.instance.tree.serial()
        with self.instance.db.read() as session:
            count = session.scalar(
                select(func.count())
                .select_from(JournalRow)
                .where(JournalRow.serial > done, JournalRow.action == "sync project")
            )
        return int(count or 0)


def test_a_sync_of_many_projects_applies_them_in_batches(
    upstream: Upstream, mirror: Instance
) -> None:
    counted = Counted(mirror)
    # A linger longer than the sync: batches close only when full or when the workers are done.
    report = sync(mirror, workers=4, batch_size=8, batch_linger=60)
    assert report.ok, report.failed
    assert report.synced == len(PROJECTS)
    # 20 projects: three renders of 8, 8 and 4 project rows (one transaction each).
    assert counted.renders == [8, 8, 4]
    # The batches, plus the run's start and end (and the TUF options it records).
    assert counted.writes <= 3 + 3, counted.writes
    # And the search index: at most one write per render of the sync's journal rows.
    assert 1 <= counted.search_writes <= len(counted.renders) + 2, counted.search_writes
    # Shared signing (PostgreSQL): at most one stored round per render, and the run's end.
    assert counted.signing_writes <= len(counted.renders) + 2, counted.signing_writes
    _everything_there(upstream, mirror)
    again = sync(mirror)
    assert again.ok and again.synced == 0 and again.requests == 1


def test_a_batch_closes_after_its_linger(upstream: Upstream, mirror: Instance) -> None:
    # One worker, batches that never fill: they close by time, not only at the end.
    counted = Counted(mirror)
    report = sync(mirror, workers=1, batch_size=1000, batch_linger=0.05)
    assert report.ok, report.failed
    assert report.synced == len(PROJECTS)
    assert len(counted.renders) >= 2, counted.renders
    assert sum(counted.renders) == len(PROJECTS)
    _everything_there(upstream, mirror)


@contextmanager
def _refusing(instance: Instance, project: str) -> Iterator[None]:
    """A database trigger that refuses to insert ``project``: a fault in its apply alone."""
    with instance.db.engine.begin() as connection:
        if instance.db.dialect == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_one BEFORE INSERT ON projects"
                    f" WHEN NEW.normalized = '{project}'"
                    " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN"
                    f" IF NEW.normalized = '{project}' THEN"
                    " RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$"
                    " LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_one BEFORE INSERT ON projects"
                    " FOR EACH ROW EXECUTE FUNCTION refuse_one()"
                )
            )
    try:
        yield
    finally:
        with instance.db.engine.begin() as connection:
            if instance.db.dialect == "sqlite":
                connection.execute(text("DROP TRIGGER refuse_one"))
            else:
                connection.execute(text("DROP TRIGGER refuse_one ON projects"))
                connection.execute(text("DROP FUNCTION refuse_one()"))


def test_a_failed_apply_loses_only_its_own_project(upstream: Upstream, mirror: Instance) -> None:
    refused = PROJECTS[7]
    with _refusing(mirror, refused):
        notes = Notes()
        # Everything in one batch: the refused project must not take the others with it.
        report = sync(mirror, batch_size=len(PROJECTS), batch_linger=60, reporter=notes)
    assert list(report.failed) == [refused]
    assert "refused by the test" in report.failed[refused]
    assert report.synced == len(PROJECTS) - 1
    assert _applied(mirror) == [p for p in PROJECTS if p != refused]
    assert sorted(tree_projects(mirror, "mirror")) == [p for p in PROJECTS if p != refused]
    check_consistent(mirror)
    assert state_of(mirror).synced_serial is None  # the run did not complete
    again = sync(mirror)
    assert again.ok, again.failed
    assert again.synced == 1
    _everything_there(upstream, mirror)


@contextmanager
def _render_lock(instance: Instance) -> Iterator[None]:
    """Hold the renderer's lock, as another render would: catch-ups wait for it."""
    fd = os.open(instance.renderer.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _sync_process(instance: Instance, workers: int) -> subprocess.Popen[bytes]:
    settings = instance.settings
    env = {**os.environ, **settings_env(settings)}
    command = ["mirror", "sync", "mirror", "--workers", str(workers), "--data", str(settings.data)]
    return subprocess.Popen(
        [sys.executable, "-m", "tilsit", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _files_fetched(upstream: Upstream, since: int) -> list[str]:
    return [path for _m, path, _s in upstream.requests(since) if path.startswith("/packages/")]


def test_a_kill_between_apply_and_render_is_healed(upstream: Upstream, mirror: Instance) -> None:
    process = _sync_process(mirror, workers=1)
    try:
        # Past its start (which renders): it recorded the upstream's serial.
        _wait_for(lambda: _started(mirror), "the run to start")
        with _render_lock(mirror):
            # A batch commits, then its render waits for the lock: kill it there.
            _wait_for(
                lambda: bool(set(_applied(mirror)) - set(tree_projects(mirror, "mirror"))),
                "a batch to commit",
            )
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
    assert process.returncode == -signal.SIGKILL
    applied = _applied(mirror)
    rendered = set(tree_projects(mirror, "mirror"))
    # Rows committed but not rendered: the tree does not show them, and is consistent.
    assert rendered < set(applied)
    check_consistent(mirror)
    assert state_of(mirror).synced_serial is None
    # The next catch-up (here the next sync's) renders them; the sync resumes.
    mark = upstream.mark()
    report = sync(mirror)
    assert report.ok, report.failed
    _everything_there(upstream, mirror)
    fetched = _files_fetched(upstream, mark)
    assert not [p for p in fetched if any(f"/{name.replace('-', '_')}-" in p for name in applied)]
    assert report.synced == len(PROJECTS) - len(applied)


def test_a_kill_in_the_middle_of_a_batch_leaves_a_consistent_tree(
    upstream: Upstream, mirror: Instance
) -> None:
    first = _listed_hashes(upstream)
    process = _sync_process(mirror, workers=1)
    try:
        # Some files stored, the first batch not yet full or closed, or a batch applied:
        # wherever the kill lands, what is published is whole.
        _wait_for(lambda: any(mirror.blobs.exists(s) for s in first), "the first file")
        time.sleep(0.3)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=20)
    assert process.returncode == -signal.SIGKILL
    check_consistent(mirror)
    applied = set(_applied(mirror))
    published = set(tree_projects(mirror, "mirror"))
    assert published <= applied
    assert state_of(mirror).synced_serial is None
    report = sync(mirror)
    assert report.ok, report.failed
    _everything_there(upstream, mirror)
    assert report.synced == len(PROJECTS) - len(applied)


def _listed_hashes(upstream: Upstream) -> list[str]:
    hashes = []
    for name in PROJECTS[:3]:
        page = upstream.get(f"/simple/{name}/").json()
        hashes += [f["hashes"]["sha256"] for f in page["files"]]
    return hashes
