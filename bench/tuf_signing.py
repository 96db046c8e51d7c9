"""TUF signing cost: ms per upload with N targets in an index, and what a returning client
downloads to refresh after one upload.

    .venv/bin/python bench/tuf_signing.py [--targets 100000] [--uploads 50] [--bits 10]

Builds an index of N targets (12.5k projects x {2 pages, 3 wheels, 3 .metadata} at
100k) with tilsit's own repository code in a temporary tree, then times rounds that
each add one wheel (+ .metadata) and change its project's two pages and the index's
two pages: touched bins, snapshot and timestamp, signed and written with fsync
(Tree.write), as the renderer does after an upload.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tuf.api.metadata import TargetFile

from tilsit.store.tree import Tree
from tilsit.trust.keys import TrustSettings, init_keys
from tilsit.trust.layout import file_target
from tilsit.trust.repository import IndexRepository


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _project_targets(n: int, files: int = 3) -> dict[str, TargetFile]:
    found: dict[str, TargetFile] = {}
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--bits", type=int, default=10)
    args = parser.parse_args()
    settings = TrustSettings(bin_bits=args.bits)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        now = datetime.now(UTC).replace(microsecond=0)
        keys = init_keys(data / "data", settings, now)
        tree = Tree(data / "tree", data / "tmp")
        repo = IndexRepository(tree, "main", keys, settings)
        everything: dict[str, TargetFile] = {}
        projects = args.targets // 8
        for n in range(projects):
            everything.update(_project_targets(n))
        started = time.perf_counter()
        repo.round(now, everything, replace=True)
        full = time.perf_counter() - started
        tuf = tree.path("main/tuf")
        bins = list(tuf.glob("2.bins-*.json"))
        sizes = [p.stat().st_size for p in bins]
        print(f"{len(everything)} targets, {len(bins)} bins (bit length {args.bits})")
        print(f"full sign of every bin + snapshot + timestamp: {full:.1f} s")
        print(f"bin bytes mean {statistics.mean(sizes):,.0f} max {max(sizes):,}")

        timings = []
        returning = []
        for k in range(args.uploads):
            n = k % projects
            sha = _digest(f"upload-{k}")
            wheel = file_target(sha, f"project_{n}-9.{k}-py3-none-any.whl")
            changes: dict[str, TargetFile | None] = {
                wheel: TargetFile(50_000, {"sha256": sha}, wheel),
                wheel + ".metadata": TargetFile(
                    900, {"sha256": _digest(wheel)}, wheel + ".metadata"
                ),
            }
            for page in (
                f"simple/project-{n}/index.html",
                f"simple/project-{n}/index.v1.json",
                "simple/index.html",
                "simple/index.v1.json",
            ):
                changes[page] = TargetFile(2000, {"sha256": _digest(f"{page}-{k}")}, page)
            started = time.perf_counter()
            written = repo.round(now, changes)
            timings.append((time.perf_counter() - started) * 1000)
            snap = repo.snapshot().signed.version
            size = (tuf / "timestamp.json").stat().st_size + (
                tuf / f"{snap}.snapshot.json"
            ).stat().st_size
            # A client installing that project fetches the bin of its page and of the wheel.
            for path in (f"simple/project-{n}/index.html", wheel):
                name = keys.bins.get_role_for_target(path)
                version = repo.snapshot().signed.meta[f"{name}.json"].version
                size += (tuf / f"{version}.{name}.json").stat().st_size
            returning.append(size)
            assert written
        timings.sort()
        p95 = timings[int(len(timings) * 0.95) - 1]
        print(
            f"signing per upload (bins + snapshot + timestamp, fsync'd): median"
            f" {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms over {len(timings)} uploads"
        )
        print(
            "returning client after one upload (timestamp + snapshot + the 2 bins it needs):"
            f" {statistics.median(returning):,.0f} bytes"
        )


if __name__ == "__main__":
    main()
