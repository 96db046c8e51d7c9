"""Virtual indexes: what reads, a member's change and an OSV import cost.

    .venv/bin/python bench/virtual.py [--projects 10000] [--reads 2000]

Two figures, each from one run on this machine:

1. **Reads.** Project pages read through a virtual index and through a hosted index, from
   ``tilsit serve`` and from nginx over the same tree. Both kinds are static files, so the
   ratio should be about 1.
2. **One member's change.** A virtual index ``all`` of 3 members (a hosted index and two
   mirrors) holding ``--projects`` projects between them. One mirrored project gets a new
   release. The bench counts what the render after it did in ``all``: its journal rows,
   the pages it rewrote, the file rows it read. These should be one project's worth, not the
   index's. The same change in the mirror alone is timed for comparison.

The import of an OSV export the size of PyPI's is measured by ``bench/osv_import.py``.

The load bypasses HTTP, as ``bench/scale.py`` does: the mirrors' projects are applied as a
sync applies them, in batches, with fsync skipped while loading.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
from scale import fsync_skipped, load, project_name
from servers import tilsit_cli
from sqlalchemy import func, select

from readpath import ROOT, nginx_server, tilsit_server
from tilsit.config import load_settings
from tilsit.db.models import IndexRow, JournalRow
from tilsit.index.manage import create_index, get_index
from tilsit.index.upstream import UpstreamFile, UpstreamProject, apply_upstream_project
from tilsit.index.virtual import set_members
from tilsit.instance import open_instance

assert str(ROOT) in sys.path
from tests.builders import make_wheel  # noqa: E402

JSON = "application/vnd.pypi.simple.v1+json"


def _mirrored(instance: object, name: str, version: str) -> UpstreamFile:
    wheel = make_wheel(name, version)
    instance.blobs.put_bytes(wheel.data)  # type: ignore[attr-defined]
    return UpstreamFile(
        filename=wheel.filename,
        url=f"https://upstream.invalid/{wheel.filename}",
        sha256=wheel.sha256,
        size=len(wheel.data),
        upload_time=None,
    )


def build(data: Path, token: str, projects: int) -> None:
    """Load a third of the projects into ``main`` (hosted) and a third into each mirror;
    the virtual index ``all`` holds main, mir-a and mir-b."""
    third = projects // 3
    load(data, token, (make_wheel(project_name(i), "1.0") for i in range(third)), 200, False)
    settings = load_settings(overrides={"data": data}, environ={})
    instance = open_instance(settings, create=False, owner=True)
    try:
        with fsync_skipped(True):
            with instance.db.write() as session:
                for name in ("mir-a", "mir-b"):
                    create_index(
                        session,
                        name,
                        "mirror",
                        options={"upstream": "https://upstream.invalid/simple/"},
                    )
                virtual = create_index(session, "all", "virtual")
                set_members(session, virtual, ["main", "mir-a", "mir-b"])
            for m, mirror in enumerate(("mir-a", "mir-b")):
                start = third * (m + 1)
                for batch in range(start, start + third, 200):
                    with instance.db.write() as session:
                        index = get_index(session, mirror)
                        for i in range(batch, min(batch + 200, start + third)):
                            name = project_name(i)
                            one = _mirrored(instance, name, "1.0")
                            upstream = UpstreamProject(name, i, [one])
                            apply_upstream_project(session, index, upstream, stored={one.sha256})
            started = time.perf_counter()
            instance.renderer.catch_up()
            print(f"  rendered the members and 'all' in {time.perf_counter() - started:.1f} s")
        os.sync()
    finally:
        instance.close()


def solo_change(data: Path, projects: int, serial: int) -> float:
    """The same change in a mirror of the same size as mir-b that no virtual index holds:
    its render alone (s). The mirror is loaded on first use."""
    settings = load_settings(overrides={"data": data}, environ={})
    instance = open_instance(settings, create=False, owner=True)
    instance.renderer.coalesce_from = 0  # lists to the coalescing loop, as `tilsit serve` does
    third = projects // 3
    try:
        with instance.db.write() as session:
            fresh = session.scalar(select(func.count()).where(IndexRow.name == "solo")) == 0
            if fresh:
                create_index(
                    session,
                    "solo",
                    "mirror",
                    options={"upstream": "https://upstream.invalid/simple/"},
                )
        if fresh:
            with fsync_skipped(True):
                for batch in range(0, third, 200):
                    with instance.db.write() as session:
                        index = get_index(session, "solo")
                        for i in range(batch, min(batch + 200, third)):
                            one = _mirrored(instance, f"solo-{i}", "1.0")
                            apply_upstream_project(
                                session,
                                index,
                                UpstreamProject(f"solo-{i}", i, [one]),
                                stored={one.sha256},
                            )
                instance.renderer.catch_up()
            os.sync()
        name = f"solo-{random.randrange(third)}"
        files = [_mirrored(instance, name, "1.0"), _mirrored(instance, name, f"2.{serial}")]
        started = time.perf_counter()
        with instance.db.write() as session:
            apply_upstream_project(
                session,
                get_index(session, "solo"),
                UpstreamProject(name, 10**9 + serial, files, versions=["1.0", f"2.{serial}"]),
                stored={f.sha256 for f in files},
            )
        instance.renderer.catch_up()
        return time.perf_counter() - started
    finally:
        instance.close()


def one_change(data: Path, projects: int, round_: int = 0) -> dict[str, float]:
    """A new release of one mirrored project, and what its render did in 'all'.

    Project lists are left to the coalescing loop, as ``tilsit serve`` does at this size:
    a list names every project with its serial, so it changes at every write anyway,
    and is rendered once per interval for all of them."""
    settings = load_settings(overrides={"data": data}, environ={})
    instance = open_instance(settings, create=False, owner=True)
    instance.renderer.coalesce_from = 0
    tree = settings.tree_dir / "all"
    try:
        third = projects // 3
        name = project_name(random.randrange(2 * third, 3 * third))  # in mir-b, unchanged yet
        versions = ["1.0", f"2.{round_}.{random.randrange(10**6)}"]
        files = [_mirrored(instance, name, v) for v in versions]
        with instance.db.read() as session:
            before = int(session.scalar(select(func.max(JournalRow.serial))) or 0)
            virtual_id = get_index(session, "all").id
        marker = time.time() - 1  # mtimes have a resolution: a second's margin, then compare
        time.sleep(1.1)
        read_before = instance.renderer.snapshots.files_read
        started = time.perf_counter()
        with instance.db.write() as session:
            apply_upstream_project(
                session,
                get_index(session, "mir-b"),
                UpstreamProject(name, 10**9 + round_, files, versions=versions),
                stored={f.sha256 for f in files},
            )
        instance.renderer.catch_up()
        elapsed = time.perf_counter() - started
        with instance.db.read() as session:
            rows = int(
                session.scalar(
                    select(func.count())
                    .select_from(JournalRow)
                    .where(JournalRow.index_id == virtual_id, JournalRow.serial > before)
                )
                or 0
            )
        written = [
            p
            for p in (tree / "simple").rglob("*")
            if p.is_file() and p.stat().st_mtime > marker + 1
        ]
        return {
            "seconds": elapsed,
            "virtual_rows": rows,
            "virtual_pages_written": len(written),
            "virtual_projects_written": len({p.parent.name for p in written} - {"simple"}),
            "file_rows_read": instance.renderer.snapshots.files_read - read_before,
        }
    finally:
        instance.close()


def reads(base: str, names: list[str], index: str, count: int) -> float:
    """Requests per second for ``count`` project pages of ``index`` (JSON), one client."""
    picks = [random.choice(names) for _ in range(count)]
    with httpx.Client(base_url=base, headers={"Accept": JSON}, timeout=30) as client:
        for name in picks[:50]:  # warm
            client.get(f"/{index}/simple/{name}/").raise_for_status()
        started = time.perf_counter()
        for name in picks:
            client.get(f"/{index}/simple/{name}/").raise_for_status()
        return count / (time.perf_counter() - started)


def best_of(base: str, names: list[str], server: str, count: int) -> dict[tuple[str, str], float]:
    """The best of three alternating rounds per index: the machine is shared."""
    rates: dict[tuple[str, str], float] = {}
    for _round in range(3):
        for kind, index in (("hosted", "main"), ("virtual", "all")):
            rate = reads(base, names, index, count)
            rates[(server, kind)] = max(rates.get((server, kind), 0.0), rate)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--reuse", action="store_true", help="measure the data directory under --work again"
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="tilsit-bench-virtual-"))
    data = work / "data"
    print(f"load average {os.getloadavg()[0]:.2f}; work in {work}")
    if not (args.reuse and (data / "tree" / "all").is_dir()):
        tilsit_cli(data, "init")
        tilsit_cli(data, "user", "create", "bench", "--admin")
        token = tilsit_cli(data, "token", "create", "--user", "bench").split()[-1]
        started = time.perf_counter()
        build(data, token, args.projects)
        print(f"  built {args.projects} projects in {time.perf_counter() - started:.1f} s")

    change = min((one_change(data, args.projects, r) for r in range(3)), key=lambda c: c["seconds"])
    solo = min(solo_change(data, args.projects, random.randrange(10**6)) for _ in range(3))
    print(
        f"one mirrored project changed: {change['seconds'] * 1000:.0f} ms for its render in"
        f" the mirror and 'all'; in 'all': {change['virtual_rows']:.0f} journal row(s),"
        f" {change['virtual_pages_written']:.0f} page file(s) of"
        f" {change['virtual_projects_written']:.0f} project(s) written;"
        f" {change['file_rows_read']:.0f} file rows read"
    )
    print(
        f"the same change in a mirror of as many projects that no virtual index holds:"
        f" {solo * 1000:.0f} ms"
        f" (with the virtual index / without: {change['seconds'] / solo:.2f})"
    )

    hosted = [project_name(i) for i in range(args.projects // 3)]
    with tilsit_server(data, 1, work / "serve.log") as (url, _pid):
        time.sleep(5)  # past the start-up passes (lists, TUF freshness)
        rates = best_of(url, hosted, "tilsit", args.reads)
        try:
            with nginx_server(
                data / "tree", url.removeprefix("http://"), work / "nginx", "1"
            ) as nginx:
                rates.update(best_of(nginx, hosted, "nginx", args.reads))
        except (FileNotFoundError, RuntimeError) as exc:
            print(f"  nginx skipped: {exc}")
    for server in ("tilsit", "nginx"):
        if (server, "hosted") in rates:
            h, v = rates[(server, "hosted")], rates[(server, "virtual")]
            print(
                f"reads via {server}: hosted {h:.0f}/s, virtual {v:.0f}/s,"
                f" virtual/hosted {v / h:.2f}"
            )

    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
