"""The TUF freshness pass at scale: how long it runs, and how long it holds the render lock
in one go (what an upload arriving during it may wait).

    .venv/bin/python bench/tuf_sweep.py [--targets 400000] [--rounds 300] [--bits 10]

Builds an index of N targets (N/8 projects x {2 pages, 3 wheels, 3 .metadata}) with
tilsit's own repository code in a temporary tree, then R rounds as uploads make them
(a wheel, its .metadata, its project's two pages and the index's two pages), all
within the grace period, as in the hour before a restart. Then, as a restarted
server does:

1. a pass with nothing due (bin expiries read, then the sweep);
2. every bin made due (signed 13 hours ago), R rounds again, and a pass that
   re-signs all of them and sweeps.

Each pass is timed whole and per hold of the lock. Run it on the code before the
change (``PYTHONPATH=<old>/src``), where the pass is one hold, to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import inspect
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tuf.api.metadata import TargetFile

from tilsit.store.tree import Tree
from tilsit.trust import fresh
from tilsit.trust.keys import TrustSettings, init_keys
from tilsit.trust.layout import file_target
from tilsit.trust.repository import IndexRepository


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _project_targets(n: int, files: int = 3) -> dict[str, TargetFile | None]:
    found: dict[str, TargetFile | None] = {}
    name = f"project-{n}"
    for page in ("index.html", "index.v1.json"):
        path = f"simple/{name}/{page}"
        found[path] = TargetFile(2000, {"sha256": _digest(path)}, path)
    for k in range(files):
        sha = _digest(f"{name}-{k}")
        wheel = file_target(sha, f"project_{n}-1.{k}-py3-none-any.whl")
        found[wheel] = TargetFile(50_000, {"sha256": sha}, wheel)
        found[wheel + ".metadata"] = TargetFile(
            900, {"sha256": _digest(wheel)}, wheel + ".metadata"
        )
    return found


class Holds:
    """A stand-in for the render lock that times each hold."""

    def __init__(self) -> None:
        self.times: list[float] = []

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.times.append(time.perf_counter() - started)


def _pass(repo: IndexRepository, now: datetime, grace: int, keep: int) -> tuple[float, Holds]:
    """The freshness pass on one index, with the lock as the code under test takes it."""
    holds = Holds()
    started = time.perf_counter()
    if "hold" in inspect.signature(fresh.refresh).parameters:
        fresh.refresh(repo, now, holds)
        fresh.sweep(repo, now, grace, keep, holds)  # type: ignore[call-arg]
    else:  # the code before: the whole pass under one hold
        with holds():
            fresh.refresh(repo, now)
            fresh.sweep(repo, now, grace)
    return time.perf_counter() - started, holds


def _rounds(
    repo: IndexRepository, count: int, projects: int, now: datetime, tag: str
) -> list[float]:
    timings = []
    for k in range(count):
        n = k * 7919 % projects
        sha = _digest(f"{tag}-{k}")
        wheel = file_target(sha, f"project_{n}-9.{k}-py3-none-any.whl")
        changes: dict[str, TargetFile | None] = {
            wheel: TargetFile(50_000, {"sha256": sha}, wheel),
            wheel + ".metadata": TargetFile(900, {"sha256": _digest(wheel)}, wheel + ".metadata"),
        }
        for page in (
            f"simple/project-{n}/index.html",
            f"simple/project-{n}/index.v1.json",
            "simple/index.html",
            "simple/index.v1.json",
        ):
            changes[page] = TargetFile(2000, {"sha256": _digest(f"{page}-{tag}-{k}")}, page)
        started = time.perf_counter()
        repo.round(now, changes)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _report(label: str, took: float, holds: Holds, tuf: Path, counted: Callable[[], str]) -> None:
    ordered = sorted(holds.times)
    longest = ordered[-1] * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1 if len(ordered) > 1 else 0] * 1000
    median = statistics.median(ordered) * 1000
    where = holds.times.index(ordered[-1]) + 1
    print(
        f"{label}: {took:.2f} s, {len(holds.times)} holds of the lock, longest {longest:.0f} ms"
        f" (hold {where}), p99 {p99:.0f} ms, median {median:.0f} ms; left: {counted()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--bits", type=int, default=10)
    parser.add_argument("--keep", type=int, default=16)
    args = parser.parse_args()
    settings = TrustSettings(bin_bits=args.bits)
    grace = 3600
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        now = datetime.now(UTC).replace(microsecond=0)
        keys = init_keys(data / "data", settings, now)
        tree = Tree(data / "tree", data / "tmp")
        tuf = tree.path("main/tuf")

        def counted() -> str:
            names = [p.name for p in tuf.iterdir()]
            snapshots = sum(n.endswith(".snapshot.json") for n in names)
            bins = sum(".bins-" in n for n in names)
            size = sum(p.stat().st_size for p in tuf.iterdir()) / 1e6
            return f"{snapshots} snapshots, {bins} bin files, {size:.1f} MB of metadata"

        repo = IndexRepository(tree, "main", keys, settings)
        projects = args.targets // 8
        everything: dict[str, TargetFile | None] = {}
        for n in range(projects):
            everything.update(_project_targets(n))
        started = time.perf_counter()
        repo.round(now, everything, replace=True)
        sizes = [p.stat().st_size for p in tuf.glob("*.bins-*.json")]
        print(
            f"{len(everything)} targets, {2**args.bits} bins, bin mean"
            f" {statistics.mean(sizes) / 1000:.0f} kB; full sign {time.perf_counter() - started:.1f} s"
        )
        timings = _rounds(repo, args.rounds, projects, now, "a")
        print(f"{args.rounds} rounds, median {statistics.median(timings):.1f} ms; {counted()}")

        # A restart: a new process, nothing parsed yet.
        repo = IndexRepository(tree, "main", keys, settings)
        took, holds = _pass(repo, now, grace, args.keep)
        _report("pass, nothing due", took, holds, tuf, counted)

        # A restart after a night: every bin signed 13 hours ago is due.
        night = now - timedelta(hours=13)
        repo.round(night, resign=list(keys.bins.get_roles()))
        timings = _rounds(repo, args.rounds, projects, night, "b")
        repo = IndexRepository(tree, "main", keys, settings)
        took, holds = _pass(repo, now, grace, args.keep)
        _report("pass, every bin due", took, holds, tuf, counted)


if __name__ == "__main__":
    main()
