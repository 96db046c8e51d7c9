"""The write path at size: what one upload costs in an index of N projects.

    .venv/bin/python bench/scale.py [--sizes 100,1000,10000] [--uploads 20]
                                    [--versions 2000] [--version-uploads 10]

For each N in ``--sizes``, in a fresh data directory:

1. **Load** a hosted index to N projects (one tiny generated wheel each) through
   tilsit's own upload code, in batches: :func:`tilsit.index.upload.check_form` and
   :func:`tilsit.index.upload.store_upload` (what ``POST /legacy/`` calls), with one
   ``Database.write()`` transaction per ``--batch`` uploads instead of one per upload,
   then one ``Renderer.catch_up()`` that renders every page and signs the TUF round,
   as ``serve`` would after those writes. HTTP per project would take hours at 100k.
   During the load only, ``os.fsync`` is a no-op in this process (one ``os.sync()``
   at the end): tilsit makes about 20 fsyncs per project across blobs, pages, links
   and their directories, millions at 100k; ``--load-fsync`` keeps them. Nothing in src/ is changed or patched
   for the measured part. The load is not linear in N: ``files`` has no index on
   ``release_id``, so each upload's duplicate check (``same_distribution``) and each
   project's render (``load_project``) scan the whole table. A 100k load here reached
   42,500 projects in 17 minutes, each batch slower than the last, hence the default
   ``--sizes`` stops at 10k.
2. **Measure**, with a real ``tilsit serve`` (one worker, settings as shipped: fsync
   on, access log on) over that directory, through ``POST /legacy/`` as twine sends
   it (an API token): the first upload after start (alone: start-up work may hold the
   render lock); ``--uploads`` uploads of a new project and as many of a new version
   of a loaded project (median and p90 ms); per upload, the bytes the server process
   wrote (``/proc/<pid>/io``: ``write_bytes``, what reached the page cache for disk,
   and ``wchar``, every ``write()``), the growth of the data directory (``du``) and
   of the hashed copies of the root page (``simple/<sha256>.index.*``, kept for the
   TUF grace period); the bytes a returning TUF client downloads after one upload
   (``timestamp.json``, the new snapshot, targets if changed and every bin whose
   version changed, fetched over HTTP from ``/<index>/tuf/``); and the server's RSS
   after the uploads.
3. **Many versions**: in one more data directory, a project with ``--versions``
   versions of 2 wheels each and a project with 3 files (1.0 with 2 wheels, 1.1 with
   1), loaded the same way; then ``--version-uploads`` uploads of a new version into
   each, alternating, and the ratio of their medians.

Output: one table, the ratios the issue's targets name (upload latency at the largest
N over N=100 or the smallest N; the many-version project over the 3-file one), and
bench/results/scale-<time>.json with every figure. Everything talks to 127.0.0.1 only;
every request and subprocess has a timeout, and servers are always stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from servers import tilsit_cli, tilsit_serve

# bench/ is sys.path[0] when this file is run as a script; readpath puts the repo
# root on sys.path as it is imported.
from readpath import ROOT, summarize_profile
from tilsit.auth.tokens import find_token
from tilsit.config import load_settings
from tilsit.index.manage import get_index
from tilsit.index.upload import (
    Digests,
    UploadForm,
    UploadRules,
    check_form,
    store_upload,
    uploader_for,
)
from tilsit.instance import open_instance

assert str(ROOT) in sys.path  # for tests.*, hence after the code above (E402)
from tests.builders import Dist, make_wheel  # noqa: E402
from tests.uploads import form_for  # noqa: E402

INDEX = "main"
REQUEST_TIMEOUT = 600  # s; the first upload after start at 100k has taken 50 s
HASHED_ROOT = re.compile(r"[0-9a-f]{64}\.index\.(html|v1\.json)")
TAGS = ("py3-none-any", "py2-none-any")  # two wheels of one version, told apart by tags


# --- loading through tilsit's own upload functions ----------------------------------------


@dataclass
class LoadFigures:
    uploads: int
    check_s: float  # generating wheels and check_form (archive and metadata checks)
    store_s: float  # store_upload in batched write transactions
    render_s: float  # one Renderer.catch_up: every page, every link, one TUF round
    sync_s: float  # the os.sync() that stands for the skipped fsyncs
    open_s: float
    fsync: bool


def digests(data: bytes) -> Digests:
    return Digests(
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        blake2_256=hashlib.blake2b(data, digest_size=32).hexdigest(),
    )


@contextmanager
def fsync_skipped(skip: bool) -> Iterator[None]:
    """``os.fsync`` a no-op in this process while loading (see the module docstring)."""
    if not skip:
        yield
        return
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def load(data: Path, secret: str, dists: Iterable[Dist], batch: int, fsync: bool) -> LoadFigures:
    """Store ``dists`` as uploads by the token ``secret``, ``batch`` per transaction."""
    settings = load_settings(overrides={"data": data}, environ={})
    figures = LoadFigures(0, 0.0, 0.0, 0.0, 0.0, 0.0, fsync)
    started = time.perf_counter()
    instance = open_instance(settings, create=False, owner=True)
    figures.open_s = time.perf_counter() - started
    rules = UploadRules()
    try:
        with fsync_skipped(not fsync):
            chunk: list[Dist] = []
            for dist in dists:
                chunk.append(dist)
                if len(chunk) == batch:
                    _store_batch(instance, secret, chunk, rules, figures)
                    chunk = []
            if chunk:
                _store_batch(instance, secret, chunk, rules, figures)
            started = time.perf_counter()
            instance.renderer.catch_up()
            figures.render_s = time.perf_counter() - started
        started = time.perf_counter()
        os.sync()
        figures.sync_s = time.perf_counter() - started
    finally:
        instance.close()
    return figures


def _store_batch(
    instance: Any, secret: str, chunk: list[Dist], rules: UploadRules, figures: LoadFigures
) -> None:
    started = time.perf_counter()
    checked = []
    for dist in chunk:
        # store_upload moves the file into the blob store, as after a real upload.
        fd, name = tempfile.mkstemp(dir=instance.settings.tmp_dir, prefix="bench-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(dist.data)
        fields = {key: [value] for key, value in form_for(dist).items()}
        form = UploadForm(fields, Path(name), dist.filename, digests(dist.data))
        checked.append(check_form(form))
    middle = time.perf_counter()
    with instance.db.write() as session:
        index = get_index(session, INDEX)
        uploader = uploader_for(session, find_token(session, secret))
        for one in checked:
            result = store_upload(session, instance.blobs, index, uploader, one, rules)
            if not result.created:
                raise SystemExit(f"load: {one.dist.filename} was already stored")
    figures.store_s += time.perf_counter() - middle
    figures.check_s += middle - started
    figures.uploads += len(chunk)


def project_name(i: int) -> str:
    return f"scale-{i:06d}"


def corpus(projects: int) -> Iterator[Dist]:
    for i in range(projects):
        yield make_wheel(project_name(i), "1.0")


def versions_corpus(name: str, versions: int) -> Iterator[Dist]:
    for v in range(versions):
        for tag in TAGS:
            yield make_wheel(name, f"1.{v}", tag=tag)


# --- the server and what it writes ---------------------------------------------------------


@contextmanager
def serve(data: Path, log: Path) -> Iterator[tuple[str, int]]:
    """``tilsit serve`` with one worker and the settings as shipped; yields (URL, pid)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILSIT_")}
    with tilsit_serve(data, log, env) as served:
        yield served.url, served.pid


def proc_io(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/io").read_text()
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for {pid}")


def du_bytes(path: Path) -> int:
    """Apparent size of a directory tree (hard links counted once)."""
    # A running server removes files while du walks (the TUF sweep, replaced temps):
    # du then exits 1 but still prints the total of what it saw, which is what is meant.
    done = subprocess.run(
        ["du", "-sb", str(path)], capture_output=True, text=True, check=False, timeout=600
    )
    if not done.stdout.strip():
        raise SystemExit(f"du {path} failed: {done.stderr.strip()}")
    return int(done.stdout.split()[0])


def hashed_root_bytes(data: Path) -> int:
    """Bytes of the hashed copies of the root page (current ones included)."""
    directory = data / "tree" / INDEX / "simple"
    total = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file() and HASHED_ROOT.fullmatch(entry.name):
                total += entry.stat().st_size
    return total


@dataclass
class Upload:
    ms: float
    write_bytes: int
    wchar: int


def post(client: httpx.Client, token: str, dist: Dist, pid: int) -> Upload:
    before = proc_io(pid)
    started = time.perf_counter()
    response = client.post(
        "/legacy/",
        auth=("__token__", token),
        data=form_for(dist),
        files={"content": (dist.filename, dist.data, "application/octet-stream")},
    )
    ms = (time.perf_counter() - started) * 1000
    after = proc_io(pid)
    if response.status_code != 200:
        raise SystemExit(f"upload of {dist.filename}: {response.status_code} {response.text}")
    return Upload(
        ms, after["write_bytes"] - before["write_bytes"], after["wchar"] - before["wchar"]
    )


def tuf_refresh_bytes(client: httpx.Client, upload: Any) -> dict[str, int]:
    """Bytes a TUF client holding the current metadata downloads after ``upload()`` runs.

    Before: the client's state (timestamp, snapshot and its bin versions). After: the new
    timestamp, the new snapshot, and each bin (and targets) whose version moved. The
    figures are bytes on the wire, as a client that accepts gzip gets them (tilsit sends
    the metadata's ``.gz`` copies); ``decoded_total`` is the same without compression.
    """
    base = f"/{INDEX}/tuf"
    decoded: list[int] = []

    def get(name: str) -> tuple[bytes, int]:
        response = client.get(f"{base}/{name}", headers={"Accept-Encoding": "gzip"})
        response.raise_for_status()
        decoded.append(len(response.content))
        return response.content, response.num_bytes_downloaded

    def snapshot_meta() -> tuple[int, int, dict[str, int]]:
        timestamp, timestamp_wire = get("timestamp.json")
        version = json.loads(timestamp)["signed"]["meta"]["snapshot.json"]["version"]
        snapshot, snapshot_wire = get(f"{version}.snapshot.json")
        meta = json.loads(snapshot)["signed"]["meta"]
        return timestamp_wire, snapshot_wire, {name: m["version"] for name, m in meta.items()}

    _ts, _snap, before = snapshot_meta()
    upload()
    decoded.clear()
    timestamp, snapshot, after = snapshot_meta()
    changed = [name for name, version in after.items() if before.get(name) != version]
    bins = sum(get(f"{after[name]}.{name}")[1] for name in changed)
    return {
        "timestamp": timestamp,
        "snapshot": snapshot,
        "changed_roles": len(changed),
        "roles": bins,
        "total": timestamp + snapshot + bins,
        "decoded_total": sum(decoded),
    }


def py_spy() -> str | None:
    found = shutil.which("py-spy")
    local = ROOT / "bench" / ".venv-prof" / "bin" / "py-spy"  # as readpath.py makes it
    return found or (str(local) if local.exists() else None)


@contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy samples of the server while the block runs (nothing when ``out`` is None)."""
    spy = py_spy() if out is not None else None
    if out is None or spy is None:
        if out is not None:
            print(
                "  no py-spy (on PATH or in bench/.venv-prof, where readpath.py --profile puts it)"
            )
        yield
        return
    record = subprocess.Popen(
        [
            *(spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw"),
            *("--output", str(out), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # py-spy attaches
    try:
        yield
    finally:
        record.send_signal(signal.SIGINT)
        try:
            record.wait(timeout=120)
        except subprocess.TimeoutExpired:
            record.kill()
            record.wait(timeout=30)
    if out.exists():
        print(f"  profile of the new-project uploads (collapsed stacks): {out}")
        summarize_profile(out)


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


@dataclass
class SizeFigures:
    projects: int
    load: dict[str, Any]
    first_upload_ms: float
    new_project: list[dict[str, Any]] = field(default_factory=list)
    new_version: list[dict[str, Any]] = field(default_factory=list)
    tuf_refresh: dict[str, int] = field(default_factory=dict)
    du_growth_per_upload: float = 0.0
    hashed_root_growth_per_upload: float = 0.0
    hashed_root_page_bytes: int = 0  # one html + json pair, as now
    rss_mb: float = 0.0
    # After --reads random page reads (issue 12 item 6: <= 150 MB per worker at 100k).
    reads: int = 0
    read_ms_median: float = 0.0
    rss_after_reads_mb: float = 0.0
    data_bytes: int = 0

    def summary(self) -> dict[str, float]:
        new = [u["ms"] for u in self.new_project]
        ver = [u["ms"] for u in self.new_version]
        every = self.new_project + self.new_version
        return {
            "new_median_ms": statistics.median(new),
            "new_p90_ms": p90(new),
            "version_median_ms": statistics.median(ver),
            "version_p90_ms": p90(ver),
            "write_bytes_per_upload": statistics.median(u["write_bytes"] for u in every),
            "wchar_per_upload": statistics.median(u["wchar"] for u in every),
            "du_growth_per_upload": self.du_growth_per_upload,
            "hashed_root_growth_per_upload": self.hashed_root_growth_per_upload,
            "tuf_refresh_bytes": self.tuf_refresh.get("total", 0),
            "rss_mb": self.rss_mb,
            "rss_after_reads_mb": self.rss_after_reads_mb,
            "read_ms_median": self.read_ms_median,
            "first_upload_ms": self.first_upload_ms,
        }


# What a resolver and a mirror read of a project, in turn: the PEP 691 page, the HTML
# page, the legacy JSON.
READ_KINDS = (
    ("simple/{name}/", {"Accept": "application/vnd.pypi.simple.v1+json"}),
    ("simple/{name}/", {"Accept": "text/html"}),
    ("pypi/{name}/json", {}),
)


def random_reads(client: httpx.Client, n: int, reads: int) -> tuple[int, float]:
    """``reads`` pages of random loaded projects through the server; (count, median ms).

    Served by tilsit itself, not nginx: its memory after reading many distinct pages
    is the figure (a cache that grew with what was read would show here).
    """
    if reads <= 0:
        return 0, 0.0
    rng = random.Random(n)  # the same projects at each run of the same N
    times: list[float] = []
    for i in range(reads):
        path, headers = READ_KINDS[i % len(READ_KINDS)]
        url = f"/{INDEX}/" + path.format(name=project_name(rng.randrange(n)))
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"GET {url}: {response.status_code} {response.text[:200]}")
    return reads, statistics.median(times)


def new_instance(work: Path, name: str) -> tuple[Path, str]:
    """A fresh data directory with an admin user; returns it and an upload token."""
    data = work / name
    tilsit_cli(data, "init")
    tilsit_cli(data, "user", "create", "bench", "--admin")
    token = tilsit_cli(data, "token", "create", "--user", "bench")
    return data, token.split()[-1]


def measure_size(work: Path, n: int, args: argparse.Namespace) -> SizeFigures:
    data, token, figures = load_size(work, n, args)
    return measure_server(work, data, token, n, figures, args)


def load_size(work: Path, n: int, args: argparse.Namespace) -> tuple[Path, str, LoadFigures]:
    """A fresh data directory loaded to ``n`` projects; returns it, a token and the figures."""
    data, token = new_instance(work, f"n{n}")
    started = time.perf_counter()
    figures = load(data, token, corpus(n), args.batch, args.load_fsync)
    print(
        f"  N={n}: loaded in {time.perf_counter() - started:.1f} s (check {figures.check_s:.1f},"
        f" store {figures.store_s:.1f}, render+sign {figures.render_s:.1f},"
        f" sync {figures.sync_s:.1f})",
        flush=True,
    )
    return data, token, figures


def measure_server(
    work: Path,
    data: Path,
    token: str,
    n: int,
    figures: LoadFigures,
    args: argparse.Namespace,
    round_: int = 0,
) -> SizeFigures:
    """The uploads against ``tilsit serve`` over ``data``; ``round_`` > 0 measures the same
    directory again (with names and versions of its own)."""
    tag = f"-{round_}" if round_ else ""
    with ExitStack() as stack:
        url, pid = stack.enter_context(serve(data, work / f"serve-{n}{tag}.log"))
        client = stack.enter_context(httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT))
        first = post(client, token, make_wheel(f"scale-first{tag}", "1.0"), pid)
        result = SizeFigures(n, asdict(figures), first.ms)
        result.tuf_refresh = tuf_refresh_bytes(
            client, lambda: post(client, token, make_wheel(f"scale-tuf-probe{tag}", "1.0"), pid)
        )
        du_before, hashed_before = du_bytes(data), hashed_root_bytes(data)
        with profiled(pid, args.profile_to if n == max(args.sizes) else None):
            for i in range(args.uploads):
                one = post(client, token, make_wheel(f"scale-new{tag}-{i:04d}", "1.0"), pid)
                result.new_project.append(asdict(one))
        existing = project_name(n // 2)
        for i in range(args.uploads):
            one = post(client, token, make_wheel(existing, f"{2 + round_}.{i}"), pid)
            result.new_version.append(asdict(one))
        result.rss_mb = rss_mb(pid)
        result.reads, result.read_ms_median = random_reads(client, n, args.reads)
        result.rss_after_reads_mb = rss_mb(pid)
        uploads = 2 * args.uploads
        result.du_growth_per_upload = (du_bytes(data) - du_before) / uploads
        result.hashed_root_growth_per_upload = (hashed_root_bytes(data) - hashed_before) / uploads
        root = data / "tree" / INDEX / "simple"
        result.hashed_root_page_bytes = sum(
            (root / page).stat().st_size for page in ("index.html", "index.v1.json")
        )
    result.data_bytes = du_bytes(data)
    s = result.summary()
    print(
        f"  N={n}: first {first.ms:.0f} ms; new project {s['new_median_ms']:.0f} ms"
        f" (p90 {s['new_p90_ms']:.0f}); new version {s['version_median_ms']:.0f} ms;"
        f" {s['write_bytes_per_upload'] / 1e3:.0f} kB written; TUF refresh"
        f" {s['tuf_refresh_bytes'] / 1e3:.1f} kB"
        f" ({result.tuf_refresh.get('decoded_total', 0) / 1e3:.1f} kB decoded);"
        f" RSS {s['rss_mb']:.0f} MB;"
        f" after {result.reads} random reads (median {s['read_ms_median']:.1f} ms)"
        f" {s['rss_after_reads_mb']:.0f} MB",
        flush=True,
    )
    return result


@dataclass
class VersionFigures:
    versions: int
    load: dict[str, Any]
    many: list[dict[str, Any]] = field(default_factory=list)
    few: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        many = statistics.median(u["ms"] for u in self.many)
        few = statistics.median(u["ms"] for u in self.few)
        return {
            "many_median_ms": many,
            "many_p90_ms": p90([u["ms"] for u in self.many]),
            "few_median_ms": few,
            "ratio": many / few,
            "many_write_bytes": statistics.median(u["write_bytes"] for u in self.many),
            "few_write_bytes": statistics.median(u["write_bytes"] for u in self.few),
        }


def measure_versions(work: Path, args: argparse.Namespace) -> VersionFigures:
    data, token = new_instance(work, "versions")
    dists = [*versions_corpus("many-versions", args.versions)]
    dists += [make_wheel("three-files", "1.0", tag=tag) for tag in TAGS]
    dists.append(make_wheel("three-files", "1.1"))
    started = time.perf_counter()
    figures = load(data, token, dists, args.batch, args.load_fsync)
    print(
        f"  {args.versions} versions x 2 files: loaded in {time.perf_counter() - started:.1f} s"
        f" (render+sign {figures.render_s:.1f})",
        flush=True,
    )
    result = VersionFigures(args.versions, asdict(figures))
    with ExitStack() as stack:
        url, pid = stack.enter_context(serve(data, work / "serve-versions.log"))
        client = stack.enter_context(httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT))
        post(client, token, make_wheel("warm-up", "1.0"), pid)  # start-up work, untimed
        # The profile is nearly all the many-version project's: the others take ~1/50th.
        with profiled(pid, args.profile_versions_to):
            for i in range(args.version_uploads):
                # Alternate, so that drift in the machine's load hits both alike.
                pair = [
                    (result.many, make_wheel("many-versions", f"9.{i}")),
                    (result.few, make_wheel("three-files", f"9.{i}")),
                ]
                for into, dist in pair if i % 2 == 0 else reversed(pair):
                    into.append(asdict(post(client, token, dist, pid)))
    s = result.summary()
    print(
        f"  new version: {s['many_median_ms']:.0f} ms with {args.versions} versions,"
        f" {s['few_median_ms']:.0f} ms with 3 files (ratio {s['ratio']:.2f})",
        flush=True,
    )
    return result


# --- output ----------------------------------------------------------------------------------


def table(sizes: list[SizeFigures], versions: VersionFigures | None) -> str:
    head = (
        f"{'N':>7}{'new p50':>9}{'new p90':>9}{'ver p50':>9}{'first':>8}{'written':>10}"
        f"{'du/upl':>10}{'hashed':>9}{'TUF':>8}{'RSS MB':>8}{'RSS rd':>8}{'load s':>8}"
    )
    lines = [head]
    for size in sorted(sizes, key=lambda size: size.projects):
        s = size.summary()
        load_s = sum(size.load[k] for k in ("check_s", "store_s", "render_s", "sync_s"))
        lines.append(
            f"{size.projects:>7}{s['new_median_ms']:>9.0f}{s['new_p90_ms']:>9.0f}"
            f"{s['version_median_ms']:>9.0f}{s['first_upload_ms']:>8.0f}"
            f"{_kb(s['write_bytes_per_upload']):>10}{_kb(s['du_growth_per_upload']):>10}"
            f"{_kb(s['hashed_root_growth_per_upload']):>9}{_kb(s['tuf_refresh_bytes']):>8}"
            f"{s['rss_mb']:>8.0f}{s['rss_after_reads_mb']:>8.0f}{load_s:>8.0f}"
        )
    lines += [
        "",
        "ms: POST /legacy/ round trip; first: the first upload after the server started;",
        "written: the server's /proc/<pid>/io write_bytes per upload (median);",
        "du/upl: data directory growth per upload; hashed: hashed root-page copies kept per",
        "upload; TUF: bytes a returning TUF client downloads after one upload (gzip on the",
        "wire, as tilsit serves it to clients that accept it);",
        "RSS MB: the server after the uploads; RSS rd: after the random page reads.",
        "",
    ]
    for line in ratios(sizes, versions):
        lines.append(line)
    return "\n".join(lines)


def ratios(sizes: list[SizeFigures], versions: VersionFigures | None) -> list[str]:
    lines = ["targets (issue 12):"]
    if sizes:
        small = next((s for s in sizes if s.projects == 100), sizes[0])
        big = max(sizes, key=lambda s: s.projects)
        lo, hi = small.summary(), big.summary()
        ratio = hi["new_median_ms"] / lo["new_median_ms"]
        lines.append(
            f"  new-project upload at N={big.projects} / N={small.projects}: {ratio:.2f}"
            f" (target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})"
        )
        ratio_v = hi["version_median_ms"] / lo["version_median_ms"]
        lines.append(
            f"  new-version upload at N={big.projects} / N={small.projects}: {ratio_v:.2f}"
        )
        lines.append(
            f"  median at N={big.projects}: {hi['new_median_ms']:.0f} ms"
            f" (target <= 100 ms: {'met' if hi['new_median_ms'] <= 100 else 'NOT met'})"
        )
        tuf = hi["tuf_refresh_bytes"]
        lines.append(
            f"  TUF refresh at N={big.projects}: {tuf / 1e3:.1f} kB"
            f" (target well under 100 kB: {'met' if tuf < 100e3 else 'NOT met'})"
        )
    if versions is not None:
        v = versions.summary()
        lines.append(
            f"  new version, {versions.versions} versions / 3 files: {v['ratio']:.2f}"
            f" ({v['many_median_ms']:.0f} / {v['few_median_ms']:.0f} ms;"
            f" target <= 1.5: {'met' if v['ratio'] <= 1.5 else 'NOT met'})"
        )
    return lines


def _kb(value: float) -> str:
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k"


def discard(directory: Path) -> None:
    """Remove a data directory with rm -rf: at 100k projects it holds about a million
    files, and shutil.rmtree spent 1.5 min on the 10k one here."""
    subprocess.run(["rm", "-rf", "--", str(directory)], check=False, timeout=3600)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="100,1000,10000",
        help="comma-separated project counts (100000 takes well over half an hour of"
        " loading here, as files.release_id has no index; see bench/README.md)",
    )
    parser.add_argument("--uploads", type=int, default=20, help="timed uploads of each kind")
    parser.add_argument(
        "--reads",
        type=int,
        default=10000,
        help="random page reads through the server before its RSS is read again",
    )
    parser.add_argument("--versions", type=int, default=2000, help="versions of the big project")
    parser.add_argument(
        "--version-uploads", type=int, default=10, help="timed uploads into each of the two"
    )
    parser.add_argument("--batch", type=int, default=500, help="uploads per load transaction")
    parser.add_argument(
        "--load-fsync", action="store_true", help="keep tilsit's fsyncs while loading (slow)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the server during the new-project uploads at the largest N and the"
        " many-version uploads",
    )
    parser.add_argument("--work", type=Path, default=None, help="where data directories go")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory, with the data directory of every size",
    )
    parser.add_argument(
        "--measure",
        type=Path,
        default=None,
        metavar="DATA",
        help="measure this data directory, loaded by an earlier --keep run to the one N in"
        " --sizes, again with the source as it is now (no load; fresh names each time)",
    )
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    if any(n < 1 for n in args.sizes) or args.uploads < 1 or args.version_uploads < 1:
        parser.error("--sizes, --uploads and --version-uploads must be positive")
    if args.measure is not None and (len(args.sizes) != 1 or args.versions):
        parser.error("--measure takes one N in --sizes and --versions 0")
    return args


def measure_again(work: Path, args: argparse.Namespace) -> SizeFigures:
    """The measure of ``--measure DATA``: a new token, names of a round of its own."""
    data = args.measure.resolve()
    token = tilsit_cli(data, "token", "create", "--user", "bench").split()[-1]
    round_ = int(time.time()) % 1_000_000  # new project names and versions each time
    nothing = LoadFigures(0, 0.0, 0.0, 0.0, 0.0, 0.0, fsync=True)
    return measure_server(work, data, token, args.sizes[0], nothing, args, round_)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tilsit-bench-scale-", dir=args.work))
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    machine: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "python": platform.python_version(),
    }
    started = time.perf_counter()
    out = args.results / f"scale-{stamp}.json"
    args.profile_to = args.results / f"scale-profile-{stamp}.txt" if args.profile else None
    args.profile_versions_to = (
        args.results / f"scale-profile-versions-{stamp}.txt" if args.profile else None
    )
    sizes: list[SizeFigures] = []
    versions: VersionFigures | None = None

    def save(done: bool) -> str:
        machine["loadavg_after"] = os.getloadavg()
        text = table(sizes, versions)
        document = {
            "started": stamp,
            "finished": done,
            "seconds": time.perf_counter() - started,
            "machine": machine,
            "settings": {**vars(args), "work": str(work)},
            "sizes": [{**asdict(s), "summary": s.summary()} for s in sizes],
            "versions": {**asdict(versions), "summary": versions.summary()} if versions else None,
            "table": text.splitlines(),
        }
        out.write_text(json.dumps(document, indent=2, default=str))
        return text

    try:
        # The many-version project first: it is short, and each size after it is longer.
        if args.versions > 0:
            print(f"{args.versions}-version project:", flush=True)
            versions = measure_versions(work, args)
            save(done=False)
            discard(work / "versions")
        if args.measure is not None:
            print(f"N = {args.sizes[0]}, measured again: {args.measure}", flush=True)
            sizes.append(measure_again(work, args))
        for i, n in enumerate(args.sizes if args.measure is None else []):
            print(f"N = {n}:", flush=True)
            sizes.append(measure_size(work, n, args))
            save(done=False)  # a partial result survives a run stopped at a larger N
            if not args.keep and i < len(args.sizes) - 1:
                discard(work / f"n{n}")  # the last goes with the work directory, after the table
        text = save(done=True)
        print("\n" + text)
        print(f"\nresults: {out}")
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            discard(work)


if __name__ == "__main__":
    main()
