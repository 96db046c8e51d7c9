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
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# These need the repo root on sys.path, hence after the code above (E402).
from tests import postgres  # noqa: E402
from tests.builders import make_wheel  # noqa: E402
from tests.uploads import form_for  # noqa: E402

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


def tilsit(data: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tilsit", *args, "--data", str(data)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    return result.stdout.strip()


@contextmanager
def serve(data: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    port = postgres.free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tilsit", "serve", "--data", str(data), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"tilsit serve exited:\n{log.read_text()}")
            try:
                httpx.get(f"{url}/_/health", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"tilsit serve did not answer:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


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
        base = stack.enter_context(postgres.cluster())
        import sqlalchemy

        engine = sqlalchemy.create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql('CREATE DATABASE "bench"')
        engine.dispose()
        blobs = root / "blobs"
        blobs.mkdir()
        env = {
            **os.environ,
            "TILSIT_DATABASE_URL": f"{base}/bench",
            "TILSIT_BLOB_PATH": str(blobs),
            "TILSIT_TUF_SHARED": "true",
            "TILSIT_JOURNAL_POLL": str(args.poll),
            "TILSIT_ACCESS_LOG": "false",
        }
        data_a, data_b = root / "a", root / "b"
        tilsit(data_a, env, "init")
        data_b.mkdir(mode=0o700)
        for part in ("keys", "trust"):
            shutil.copytree(data_a / part, data_b / part)
        tilsit(data_a, env, "user", "create", "bench")
        token = tilsit(data_a, env, "token", "create", "--user", "bench").split()[-1]
        a = stack.enter_context(serve(data_a, env, root / "a.log"))
        b = stack.enter_context(serve(data_b, env, root / "b.log"))
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
