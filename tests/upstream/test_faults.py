"""Fault injection: corrupted, truncated, failing, slow and stale upstreams, and kill -9.

One real tilsit upstream per module, behind :class:`tests.upstream.faulty.FaultyServer`;
each test syncs a fresh downstream mirror through it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from tests.builders import make_sdist, make_wheel
from tests.conftest import settings_env, stop
from tests.upstream.conftest import (
    Notes,
    Upstream,
    check_consistent,
    cli,
    make_mirror,
    mirror_status,
    start_upstream,
    state_of,
    sync,
    tree_projects,
)
from tests.upstream.faulty import FaultyServer
from tilsit.config import Settings
from tilsit.db.models import ProjectRow
from tilsit.instance import Instance

PROJECTS = ["one", "three", "two"]
DISTS = [
    make_wheel("one", "1.0"),
    make_wheel("one", "1.1"),
    make_wheel("two", "2.0"),
    make_sdist("two", "2.0"),
    make_sdist("three", "3.0"),
]


@dataclass
class Rig:
    upstream: Upstream
    faulty: FaultyServer

    @property
    def simple_url(self) -> str:
        return f"{self.faulty.url}/simple/"

    def serial(self) -> int:
        return int(self.upstream.get("/simple/").json()["meta"]["_last-serial"])


@pytest.fixture(scope="module")
def rig(postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    upstream = start_upstream(tmp_path_factory.mktemp("faulty-upstream"), postgres_base)
    faulty = FaultyServer(upstream.url).start()
    try:
        upstream.upload(*DISTS)
        yield Rig(upstream, faulty)
    finally:
        faulty.stop()
        stop(upstream.live)


@pytest.fixture
def mirror(rig: Rig, mirror_instance: tuple[Settings, Instance]) -> Iterator[Instance]:
    rig.faulty.faults.clear()
    instance = mirror_instance[1]
    make_mirror(instance, rig.simple_url, timeout=0.5)
    yield instance
    rig.faulty.faults.clear()


def _everything_there(rig: Rig, instance: Instance) -> None:
    assert sorted(tree_projects(instance, "mirror")) == PROJECTS
    assert check_consistent(instance) == len(DISTS)
    state = state_of(instance)
    assert state.synced_serial == state.upstream_serial == rig.serial()


TRANSIENT: list[tuple[str, str, dict[str, Any]]] = [
    ("corrupt", r"/one-1\.0-py3-none-any\.whl$", {}),
    ("corrupt", r"/two-2\.0-py3-none-any\.whl\.metadata$", {}),
    ("truncate", r"/two-2\.0\.tar\.gz$", {}),
    ("short", r"/one-1\.1-py3-none-any\.whl$", {}),
    ("status", r"^/simple/two/$", {"status": 503}),
    ("status", r"^/simple/$", {}),
    ("delay", r"/three-3\.0\.tar\.gz$", {"delay": 1.5}),
    ("stale", r"^/simple/one/$", {"times": 2}),
]


@pytest.mark.parametrize(("kind", "pattern", "params"), TRANSIENT, ids=[t[0] for t in TRANSIENT])
def test_a_transient_fault_is_retried(
    rig: Rig, mirror: Instance, kind: str, pattern: str, params: dict[str, Any]
) -> None:
    rule = rig.faulty.faults.add(kind, pattern, **params)
    notes = Notes()
    report = sync(mirror, reporter=notes)
    assert report.ok, report.failed
    assert rule.count == params.get("times", 1)
    assert any("retry" in line for line in notes.lines), notes.lines
    _everything_there(rig, mirror)


PERSISTENT: list[tuple[str, str, str, str]] = [
    ("corrupt", r"/two-2\.0\.tar\.gz$", "two", "sha256 mismatch"),
    ("corrupt", r"/one-1\.1-py3-none-any\.whl\.metadata$", "one", "sha256 mismatch"),
    ("short", r"/three-3\.0\.tar\.gz$", "three", "bytes, its page says"),
    ("status", r"^/simple/two/$", "two", "HTTP 500"),
    ("delay", r"/one-1\.0-py3-none-any\.whl$", "one", "timed out"),
    ("stale", r"^/simple/three/$", "three", "stale page"),
]


@pytest.mark.parametrize(
    ("kind", "pattern", "project", "reason"), PERSISTENT, ids=[p[0] for p in PERSISTENT]
)
def test_a_persistent_fault_publishes_nothing_for_that_project(
    rig: Rig, mirror: Instance, kind: str, pattern: str, project: str, reason: str
) -> None:
    params = {"delay": 2.0} if kind == "delay" else {}
    rule = rig.faulty.faults.add(kind, pattern, times=None, **params)
    report = sync(mirror, attempts=2)
    assert not report.ok
    assert list(report.failed) == [project]
    assert reason in report.failed[project]
    assert rule.count == 2  # tried, retried, given up
    # Nothing of that project is published; the others are, consistently.
    assert sorted(tree_projects(mirror, "mirror")) == [p for p in PROJECTS if p != project]
    check_consistent(mirror)
    state = state_of(mirror)
    assert state.synced_serial is None  # advanced only by a complete run
    assert state.upstream_serial == rig.serial()
    assert state.last_error is not None and project in state.last_error
    assert project in (mirror_status(mirror)["last_error"] or "")
    # The fault gone, the next run completes.
    rig.faulty.faults.clear()
    again = sync(mirror)
    assert again.ok, again.failed
    assert again.synced == 1
    _everything_there(rig, mirror)
    assert mirror_status(mirror)["synced_serial"] == rig.serial()


def test_an_unreachable_root_fails_the_run(rig: Rig, mirror: Instance) -> None:
    rig.faulty.faults.add("status", r"^/simple/$", times=None)
    result = cli(mirror.settings, "mirror", "sync", "mirror", "--retries", "1", "--backoff", "0")
    assert result.exit_code == 1, result.output
    assert "upstream root failed" in result.stdout
    assert "HTTP 500" in (state_of(mirror).last_error or "")


def _applied(instance: Instance) -> list[str]:
    with instance.db.read() as session:
        return list(session.scalars(select(ProjectRow.normalized)))


def test_kill_9_mid_sync_then_resume(rig: Rig, mirror: Instance) -> None:
    # one's four downloads (2 wheels, 2 metadata files) pass; the next file stalls.
    stall = rig.faulty.faults.add("stall", r"^/packages/", after=4)
    settings = mirror.settings
    env = {**os.environ, **settings_env(settings)}
    command = ["mirror", "sync", "mirror", "--workers", "1", "--data", str(settings.data)]
    process = subprocess.Popen(
        [sys.executable, "-m", "tilsit", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert stall.hit.wait(timeout=60), "the sync never reached the stalled file"
        # one's batch closes by time while the next file stalls: let it commit.
        deadline = time.monotonic() + 30
        while not _applied(mirror):
            assert time.monotonic() < deadline, "one was never applied"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=20)
        stall.release.set()
    assert process.returncode == -signal.SIGKILL
    # Killed mid-sync: whatever is published is consistent; nothing claims completion.
    check_consistent(mirror)
    assert state_of(mirror).synced_serial is None
    applied = _applied(mirror)
    assert applied == ["one"]  # applied before the kill; the rest was still in flight
    rig.faulty.faults.clear()
    report = sync(mirror)
    assert report.ok, report.failed
    _everything_there(rig, mirror)
    # The resumed run fetched nothing the killed one had stored.
    fetched = [p for p in rig.faulty.faults.requests if p.startswith("/packages/")]
    assert not [p for p in fetched if "/one-" in p], fetched
    assert report.files == len(fetched)
