"""Search at 100,000 projects: query latency (p50/p99) on SQLite and PostgreSQL, through
the search function and through HTTP, and what the journal follower adds per changed
project.

    .venv/bin/python bench/search.py [--projects 100000] [--queries 40] [--backend both]

1. **Corpus.** ``--projects`` documents written straight into ``search_docs`` (and, on
   SQLite, their names' typo variants into ``search_names``), in one index: names of one
   to three words from a list of 300, summaries of 6 to 14 words and three keywords from
   a vocabulary of 3,000 made-up words (seed 14), READMEs of 60 words. ``ANALYZE`` after.
2. **Queries**, ``--queries`` of each kind, drawn from the corpus: an exact name, a
   prefix (the first four letters of a name), a typo (a name with one letter dropped or
   changed), and text (one or two words of a summary). Each through
   :func:`tilsit.search.query.search` (with the viewer's readable set computed as the
   endpoint does), then as ``GET /_/search?q=…&format=json`` of a real ``tilsit serve``.
3. **Follower.** ``--changes`` new projects stored one per transaction (the upload
   path's ``store_upload``), each followed by the render alone and then the search
   follower alone: the follower's time per changed project beside the render's.

Prints a table and the load average before and after; every figure is from one run.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from servers import create_database, tilsit_serve
from sqlalchemy import insert, text

from readpath import ROOT
from tilsit.auth.tokens import create_token, find_token
from tilsit.config import load_settings
from tilsit.db.models import SearchDocRow
from tilsit.index.manage import create_user, get_index
from tilsit.index.upload import UploadForm, UploadRules, check_form, store_upload, uploader_for
from tilsit.instance import Instance, open_instance
from tilsit.search.names import deletions
from tilsit.search.query import search
from tilsit.search.viewer import for_user

assert str(ROOT) in sys.path  # for tests.*, hence after the code above (E402)
from scale import digests  # noqa: E402
from tests import postgres  # noqa: E402
from tests.builders import make_wheel  # noqa: E402
from tests.uploads import form_for  # noqa: E402

SEED = 14
KINDS = ("exact", "prefix", "typo", "text")


def _word(rng: random.Random, syllables: int) -> str:
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    return "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables))


def corpus(projects: int) -> tuple[list[dict[str, object]], list[str]]:
    rng = random.Random(SEED)
    stems = sorted({_word(rng, rng.randint(2, 4)) for _ in range(400)})[:300]
    vocabulary = sorted({_word(rng, rng.randint(2, 5)) for _ in range(4000)})[:3000]
    names: set[str] = set()
    rows: list[dict[str, object]] = []
    while len(rows) < projects:
        parts = rng.sample(stems, rng.choice((1, 2, 2, 3)))
        name = "-".join(parts)
        if name in names:
            name = f"{name}-{len(rows)}"
        names.add(name)
        rows.append(
            {
                "index_id": 1,
                "normalized": name,
                "name": name,
                "version": f"1.{rng.randint(0, 30)}",
                "summary": " ".join(rng.choices(vocabulary, k=rng.randint(6, 14))).capitalize(),
                "keywords": " ".join(rng.choices(vocabulary, k=3)),
                "description": " ".join(rng.choices(vocabulary, k=60)),
                "uploaded_at": None,
                "serial": 1,
            }
        )
    return rows, vocabulary


def queries(rows: list[dict[str, object]], count: int) -> dict[str, list[str]]:
    rng = random.Random(SEED + 1)
    picked = rng.sample(rows, count * 4)
    out: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for i, row in enumerate(picked):
        name = str(row["normalized"])
        kind = KINDS[i % 4]
        if kind == "exact":
            out[kind].append(name)
        elif kind == "prefix":
            out[kind].append(name[:4])
        elif kind == "typo":
            at = rng.randrange(1, len(name) - 1)
            if rng.random() < 0.5:
                out[kind].append(name[:at] + name[at + 1 :])
            else:
                out[kind].append(name[:at] + rng.choice(string.ascii_lowercase) + name[at + 1 :])
        else:
            words = str(row["summary"]).lower().split()
            out[kind].append(" ".join(rng.sample(words, rng.choice((1, 2)))))
    return out


def load_documents(instance: Instance, rows: list[dict[str, object]]) -> float:
    started = time.perf_counter()
    with instance.db.write() as session:
        for start in range(0, len(rows), 5000):
            session.execute(insert(SearchDocRow), rows[start : start + 5000])
        # The typo table, as the follower fills it, on both backends.
        pairs = [
            {"variant": v, "normalized": str(r["normalized"])}
            for r in rows
            for v in deletions(str(r["normalized"]))
        ]
        for start in range(0, len(pairs), 50000):
            session.execute(
                text(
                    "INSERT INTO search_names VALUES (:variant, :normalized) ON CONFLICT DO NOTHING"
                ),
                pairs[start : start + 50000],
            )
    with instance.db.engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    return time.perf_counter() - started


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def timed(run: Callable[[str], int], items: list[str]) -> tuple[list[float], int]:
    run(items[0])  # warm
    times, found = [], 0
    for item in items:
        started = time.perf_counter()
        found += run(item) > 0
        times.append(time.perf_counter() - started)
    return times, found


@contextmanager
def server(data: Path, database_url: str) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILSIT_")}
    env["TILSIT_DATABASE_URL"] = database_url
    env["TILSIT_ACCESS_LOG"] = "false"
    with tilsit_serve(data, data.parent / "serve.log", env) as served:
        yield served.url


def follower_cost(instance: Instance, changes: int) -> tuple[float, float]:
    """Median ms per changed project: the render alone, the search follower alone."""
    with instance.db.write() as session:
        user = create_user(session, "bench")
        secret = create_token(session, user, bulk=True).secret
    followers, instance.renderer.followers = instance.renderer.followers, []
    render, follow = [], []
    try:
        for i in range(changes):
            dist = make_wheel(f"bench-change-{i}", "1.0")
            fd, name = tempfile.mkstemp(dir=instance.settings.tmp_dir, prefix="bench-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(dist.data)
            fields = {key: [value] for key, value in form_for(dist).items()}
            checked = check_form(UploadForm(fields, Path(name), dist.filename, digests(dist.data)))
            with instance.db.write() as session:
                uploader = uploader_for(session, find_token(session, secret))
                store_upload(
                    session,
                    instance.blobs,
                    get_index(session, "main"),
                    uploader,
                    checked,
                    UploadRules(),
                )
            started = time.perf_counter()
            instance.renderer.catch_up()
            render.append(time.perf_counter() - started)
            started = time.perf_counter()
            instance.search.catch_up()
            follow.append(time.perf_counter() - started)
    finally:
        instance.renderer.followers = followers
    return statistics.median(render) * 1000, statistics.median(follow) * 1000


def run_backend(
    backend: str, rows: list[dict[str, object]], asked: dict[str, list[str]], changes: int
) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix=f"tilsit-bench-search-{backend}-"))
    data = root / "data"
    with contextlib_cluster(backend) as database_url:
        settings = load_settings(overrides={"data": data, "database_url": database_url}, environ={})
        instance = open_instance(settings)
        try:
            load_s = load_documents(instance, rows)
            figures: dict[str, object] = {"load_s": load_s}

            def direct(query: str) -> int:
                with instance.db.read() as session:
                    readable = for_user(session, None)
                    return len(search(session, query, readable).hits)

            for kind in KINDS:
                times, found = timed(direct, asked[kind])
                figures[f"{kind} fn"] = (*percentiles(times), found, len(asked[kind]))
            render_ms, follow_ms = follower_cost(instance, changes)
            figures["render ms"], figures["follower ms"] = render_ms, follow_ms
        finally:
            instance.close()
        with server(data, database_url) as url, httpx.Client(base_url=url, timeout=30) as client:

            def http(query: str) -> int:
                response = client.get("/_/search", params={"q": query, "format": "json"})
                response.raise_for_status()
                return len(response.json()["results"])

            for kind in KINDS:
                times, found = timed(http, asked[kind])
                figures[f"{kind} http"] = (*percentiles(times), found, len(asked[kind]))
    return figures


@contextmanager
def contextlib_cluster(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        yield ""
        return
    with postgres.cluster() as base:
        yield create_database(base, "bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    load_before = os.getloadavg()
    rows, _vocabulary = corpus(args.projects)
    asked = queries(rows, args.queries)
    results = {b: run_backend(b, rows, asked, args.changes) for b in backends}
    load_after = os.getloadavg()
    print(f"{args.projects} projects, {args.queries} queries of each kind")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    header = f"{'measure':<22}" + "".join(f"{b:>22}" for b in backends)
    print(header)
    print(f"{'load documents s':<22}" + "".join(f"{results[b]['load_s']:>22.1f}" for b in backends))
    for kind in KINDS:
        for via in ("fn", "http"):
            cells = []
            for b in backends:
                p50, p99, found, total = results[b][f"{kind} {via}"]  # type: ignore[misc]
                cells.append(f"{p50:6.1f} / {p99:6.1f} ({found}/{total})")
            print(f"{kind + ' ' + via + ' p50/p99 ms':<22}" + "".join(f"{c:>22}" for c in cells))
    for key in ("render ms", "follower ms"):
        print(f"{key + ' per change':<22}" + "".join(f"{results[b][key]:>22.1f}" for b in backends))


if __name__ == "__main__":
    main()
