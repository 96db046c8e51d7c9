"""The browsing pages' queries on an index of many projects: a page costs what it shows.

Builds an index of ``--projects`` projects (rows: one release and one wheel each, uploaded
a minute apart) in a fresh SQLite database, then times, in one run, each query the index
page and the home page make, and prints each against the first page by name:

    .venv/bin/python bench/index_page.py [--projects 100000] [--repeat 5]

A page deep in the list by name costs an OFFSET walk of the (index_id, normalized) index;
a page by last upload walks (index_id, upload_time) until it has met enough projects; the
counts are COUNTs, and the second call of the same serial is a cache hit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from tilsit.config import load_settings
from tilsit.db.models import FileRow, IndexRow, ProjectRow, ReleaseRow
from tilsit.index import listing
from tilsit.instance import open_instance
from tilsit.spec.versions import version_key


def build(instance: object, count: int) -> None:
    db = instance.db  # type: ignore[attr-defined]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    key = version_key("1.0")
    with db.write() as session:
        index = session.scalars(select(IndexRow).where(IndexRow.name == "main")).one()
        step = 10_000
        for start in range(0, count, step):
            ids = range(start + 1, min(count, start + step) + 1)
            session.execute(
                insert(ProjectRow),
                [
                    {
                        "id": n,
                        "index_id": index.id,
                        "name": f"proj-{n:06d}",
                        "normalized": f"proj-{n:06d}",
                        "confusable": f"proj-{n:06d}",
                    }
                    for n in ids
                ],
            )
            session.execute(
                insert(ReleaseRow),
                [{"id": n, "project_id": n, "version": "1.0", "version_key": key} for n in ids],
            )
            session.execute(
                insert(FileRow),
                [
                    {
                        "release_id": n,
                        "index_id": index.id,
                        "filename": f"proj_{n:06d}-1.0-py3-none-any.whl",
                        "packagetype": "bdist_wheel",
                        "python_version": "py3",
                        "size": 10,
                        "sha256": f"{n:064x}",
                        "md5": "0" * 32,
                        "blake2_256": "0" * 64,
                        "upload_time": t0 + timedelta(minutes=n),
                    }
                    for n in ids
                ],
            )
        index.last_serial += 1


def timed(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        settings = load_settings(overrides={"data": Path(scratch)}, environ={})
        instance = open_instance(settings)
        try:
            build(instance, args.projects)
            last = (args.projects + listing.PER_PAGE - 1) // listing.PER_PAGE
            with instance.db.read() as session:
                index = session.scalars(select(IndexRow).where(IndexRow.name == "main")).one()

                def uncached_counts() -> object:
                    listing._count_cache.clear()
                    return listing.counts(session, index)

                cases: list[tuple[str, Callable[[], object]]] = [
                    ("page 1 by name", lambda: listing.project_page(session, index, "name", 1)),
                    (
                        f"page {last} by name",
                        lambda: listing.project_page(session, index, "name", last),
                    ),
                    (
                        "page 1 by last upload",
                        lambda: listing.project_page(session, index, "updated", 1),
                    ),
                    (
                        "page 10 by last upload",
                        lambda: listing.project_page(session, index, "updated", 10),
                    ),
                    (
                        f"page {listing.MAX_UPDATED_PAGES} by last upload (the deepest)",
                        lambda: listing.project_page(
                            session, index, "updated", listing.MAX_UPDATED_PAGES
                        ),
                    ),
                    ("counts, uncached", uncached_counts),
                    ("counts, cached", lambda: listing.counts(session, index)),
                    ("recent uploads (20)", lambda: listing.recent_uploads(session, [index], 20)),
                ]
                results = [(name, timed(call, args.repeat)) for name, call in cases]
        finally:
            instance.close()
    base = results[0][1]
    print(f"{args.projects:,} projects, SQLite, median of {args.repeat}; load {os.getloadavg()}")
    for name, seconds in results:
        print(f"{name:40} {seconds * 1000:9.2f} ms  {seconds / base:8.1f}x page 1 by name")


if __name__ == "__main__":
    main()
