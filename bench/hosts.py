"""Two hosts on one PostgreSQL: how long an upload on host A takes to be served by host B.

    .venv/bin/python bench/hosts.py [--uploads 50] [--poll 2.0]

Starts a throwaway PostgreSQL cluster (tests/postgres.py: initdb and pg_ctl, on
127.0.0.1) and two ``tilsit serve`` processes on it, each with its own data
directory and port, the second with the first one's keys copied, both with one
blob directory (``blob_path``), as docs/scale-out.md describes. Then
``--uploads`` uploads of new versions of one project through A's ``POST /legacy/``
(as twine sends them), one after another. After each 200 from A, the script asks
B for the project's JSON page every 5 ms until it lists the new file, then fetches
the file from B and checks its sha256. The delay is from A's answer to B's page
listing the file (A has rendered and signed its own tree by then); the file fetch
is timed apart.

Output: p50, p90, p99 and max of the delay in ms, the same for the upload itself,
and bench/results/hosts-<time>.json with every figure. ``--poll`` is B's
``journal_poll`` (the bound when a notification is lost; notifications normally
wake B at once). Everything talks to 127.0.0.1 only; servers and the cluster are
always stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx

# bench/ is sys.path[0] when this file is run as a script; servers puts the repo
# root on sys.path as it is imported, before tests/ is imported.
from servers import ROOT, create_database, tilsit_cli, tilsit_serve
from tests import postgres
from tests.builders import make_wheel
from tests.uploads import form_for

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
PROJECT = "bench-hosts"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def figures(values: list[float]) -> dict[str, float]:
    return {
        "p50": statistics.median(values),
        "p90": percentile(values, 0.9),
        "p99": percentile(values, 0.99),
        "max": max(values),
    }


def measure(a: str, b: str, token: str, uploads: int) -> dict[str, list[float]]:
    delays: list[float] = []
    upload_ms: list[float] = []
    file_ms: list[float] = []
    with httpx.Client(timeout=60) as http:
        for n in range(1, uploads + 1):
            dist = make_wheel(PROJECT, f"1.{n}")
            started = time.perf_counter()
            answer = http.post(
                f"{a}/legacy/",
                data=form_for(dist),
                files={"content": (dist.filename, dist.data, "application/octet-stream")},
                auth=("__token__", token),
            )
            answered = time.perf_counter()
            if answer.status_code != 200:
                raise SystemExit(f"upload {dist.filename}: {answer.status_code} {answer.text}")
            page = f"{b}/simple/{PROJECT}/"
            while True:
                listed = http.get(page, headers=JSON)
                if listed.status_code == 200:
                    entries = {f["filename"]: f for f in listed.json()["files"]}
                    if dist.filename in entries:
                        break
                if time.perf_counter() - answered > 30:
                    raise SystemExit(f"B did not list {dist.filename} within 30 s")
                time.sleep(0.005)
            seen = time.perf_counter()
            body = http.get(str(httpx.URL(page).join(entries[dist.filename]["url"])))
            fetched = time.perf_counter()
            if body.status_code != 200 or hashlib.sha256(body.content).hexdigest() != dist.sha256:
                raise SystemExit(f"B served {dist.filename} wrongly: {body.status_code}")
            upload_ms.append((answered - started) * 1000)
            delays.append((seen - answered) * 1000)
            file_ms.append((fetched - seen) * 1000)
    return {"delay_ms": delays, "upload_ms": upload_ms, "file_ms": file_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--poll", type=float, default=2.0, help="journal_poll of the hosts")
    args = parser.parse_args()
    with ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="tilsit-bench-hosts-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        database_url = create_database(stack.enter_context(postgres.cluster()), "bench")
        blobs = root / "blobs"
        blobs.mkdir()
        env = {
            **os.environ,
            "TILSIT_DATABASE_URL": database_url,
            "TILSIT_BLOB_PATH": str(blobs),
            "TILSIT_TUF_SHARED": "true",
            "TILSIT_JOURNAL_POLL": str(args.poll),
            "TILSIT_ACCESS_LOG": "false",
        }
        data_a, data_b = root / "a", root / "b"
        tilsit_cli(data_a, "init", env=env)
        data_b.mkdir(mode=0o700)
        for part in ("keys", "trust"):
            shutil.copytree(data_a / part, data_b / part)
        tilsit_cli(data_a, "user", "create", "bench", env=env)
        token = tilsit_cli(data_a, "token", "create", "--user", "bench", env=env).split()[-1]
        a = stack.enter_context(tilsit_serve(data_a, root / "a.log", env)).url
        b = stack.enter_context(tilsit_serve(data_b, root / "b.log", env)).url
        results = measure(a, b, token, args.uploads)
    summary = {name: figures(values) for name, values in results.items()}
    print(f"{args.uploads} uploads on A, served by B (journal_poll {args.poll} s)")
    print(f"{'ms':<12}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
    for name, row in summary.items():
        cells = "".join(f"{row[k]:8.1f}" for k in ("p50", "p90", "p99", "max"))
        print(f"{name:<12}{cells}")
    out = ROOT / "bench" / "results" / f"hosts-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "uploads": args.uploads,
                "journal_poll": args.poll,
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "loadavg": os.getloadavg(),
                "summary": summary,
                "raw": results,
            },
            indent=2,
        )
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
