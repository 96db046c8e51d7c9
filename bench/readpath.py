"""The read path under load: tilsit's own server against nginx serving the same tree.

    .venv/bin/python bench/readpath.py [--projects N] [--duration S] [--profile]

One corpus (100+ real wheels from /opt/pypi/files when that exists, else
generated ones; always one file of about 1 MiB) is uploaded to a real
``tilsit serve`` through the upload API, then nginx (the config from
:mod:`tilsit.nginx`) serves the same tree. In one run it measures, at the
same concurrency, with wrk: requests/s and p99 latency of a JSON project page, an
HTML project page and the 1 MiB file, from tilsit with one worker, tilsit with two
workers and nginx; and the wall time of ``uv pip install`` and ``pip install`` of
30 of the projects (``--no-deps``, fresh venv and empty cache each time). Results
go to stdout as a table (ratios are tilsit/nginx) and to bench/results/ as JSON.

Everything talks to 127.0.0.1 only; every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# These need the repo root on sys.path, hence after the code above (E402).
from servers import free_port, stop, tilsit_cli, tilsit_serve, wait_until_up  # noqa: E402
from tests.builders import make_wheel  # noqa: E402

from tilsit.nginx import PERL_MODULE, render_standalone  # noqa: E402

REAL_WHEELS = Path("/opt/pypi/files")
MAX_FILE = 50 * 1024 * 1024
ONE_MIB = 1024 * 1024
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1,"
    " text/html; q=0.01"
)
INSTALL_COUNT = 30
# Fresh venvs and caches go to tmpfs, in directories made by mkdtemp (so not S108's risk).
TMPFS = Path("/dev/shm")  # noqa: S108


# --- the corpus -------------------------------------------------------------------------


@dataclass
class Wheel:
    path: Path
    name: str  # as in the filename
    version: str
    size: int


def real_wheels(projects: int) -> list[Wheel]:
    """One wheel per project from /opt/pypi/files (<= 50 MB), plus the one nearest 1 MiB."""
    by_project: dict[str, Wheel] = {}
    for path in sorted(REAL_WHEELS.glob("*.whl")):
        size = path.stat().st_size
        if size > MAX_FILE:
            continue
        try:
            name, version, _build, _tags = parse_wheel_filename(path.name)
        except ValueError:
            continue
        by_project.setdefault(name, Wheel(path, name, str(version), size))
    chosen = list(by_project.values())[:projects]
    near_mib = min(by_project.values(), key=lambda w: abs(w.size - ONE_MIB))
    if near_mib not in chosen:
        chosen.append(near_mib)
    return chosen


def generated_wheels(projects: int, directory: Path) -> list[Wheel]:
    """Small pure wheels, and one of about 1 MiB that deflate cannot shrink."""
    wheels = []
    for i in range(projects):
        members = {}
        if i == 0:
            blob = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(ONE_MIB // 32))
            members["bench_0000/blob.bin"] = blob
        dist = make_wheel(f"bench-{i:04d}", "1.0", members=members)
        path = dist.write(directory)
        wheels.append(Wheel(path, f"bench-{i:04d}", "1.0", len(dist.data)))
    return wheels


def upload_all(
    url: str, token: str, wheels: list[Wheel], legacy: str = "/legacy/"
) -> tuple[list[Wheel], list[str]]:
    """Upload through ``legacy`` (the default index's) as twine does; returns (stored, refusals)."""
    stored, refused = [], []
    with httpx.Client(base_url=url, timeout=300) as client:
        for wheel in wheels:
            data = wheel.path.read_bytes()
            response = client.post(
                legacy,
                auth=("__token__", token),
                data={
                    ":action": "file_upload",
                    "protocol_version": "1",
                    "name": wheel.name,
                    "version": wheel.version,
                    "filetype": "bdist_wheel",
                    "pyversion": "py3",
                    "sha256_digest": hashlib.sha256(data).hexdigest(),
                },
                files={"content": (wheel.path.name, data, "application/octet-stream")},
            )
            if response.status_code == 200:
                stored.append(wheel)
            else:
                refused.append(f"{wheel.path.name}: {response.status_code} {response.text[:120]}")
    return stored, refused


def installable(wheels: list[Wheel], count: int) -> list[Wheel]:
    """``count`` wheels this interpreter can install, in name order, none over 20 MB."""
    supported = set(sys_tags())
    picked = []
    for wheel in sorted(wheels, key=lambda w: w.name):
        _name, _version, _build, tags = parse_wheel_filename(wheel.path.name)
        if wheel.size <= 20 * 1024 * 1024 and tags & supported:
            picked.append(wheel)
        if len(picked) == count:
            break
    return picked


# --- servers ----------------------------------------------------------------------------


@contextmanager
def tilsit_server(data: Path, workers: int, log: Path) -> Iterator[tuple[str, int]]:
    """``tilsit serve`` with ``workers`` workers; yields (URL, pid)."""
    # nginx runs with its access log off too: like for like.
    # The corpus is loaded by one user: no limit on new projects per hour.
    env = {**os.environ, "TILSIT_ACCESS_LOG": "false", "TILSIT_PROJECT_CREATE_RATE": ""}
    with tilsit_serve(data, log, env, "--workers", str(workers)) as served:
        yield served.url, served.pid


@contextmanager
def nginx_server(
    tree: Path,
    upstream: str,
    run_dir: Path,
    workers: str,
    edit: Callable[[str], str] | None = None,
) -> Iterator[str]:
    """nginx with tilsit's generated config (``edit`` may change it first, for a variant)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = run_dir / "nginx.conf"
    text = render_standalone(
        tree,
        f"127.0.0.1:{port}",
        "main",
        upstream,
        run_dir=run_dir,
        user="root" if os.geteuid() == 0 else None,
        workers=workers,
    )
    config.write_text(edit(text) if edit is not None else text)
    log = run_dir / "error.log"
    process = subprocess.Popen(
        ["nginx", "-c", str(config), "-p", str(run_dir), "-e", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/simple/", process, log)
        yield url
    finally:
        stop(process)


# --- measurements -----------------------------------------------------------------------


@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def wrk(url: str, headers: dict[str, str], args: argparse.Namespace) -> Load:
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s"]
    command += ["--latency", "--timeout", "10s"]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    output = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=args.duration + 60,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if rate is None or p50 is None or p99 is None:
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors:.*", output)
    errors = int(bad[1]) if bad else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors[0]))
    return Load(float(rate[1]), _ms(p50[1]), _ms(p99[1]), errors)


def check_target(url: str, headers: dict[str, str], content_type: str) -> None:
    response = httpx.get(url, headers=headers, timeout=30)
    if response.status_code != 200 or response.headers["content-type"] != content_type:
        raise SystemExit(f"{url}: {response.status_code} {response.headers.get('content-type')}")


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


@dataclass
class Clients:
    uv: Path
    pip: Path


def find_clients() -> Clients:
    """The clients from .tools/ (scripts/install-clients), else venvs of our own in bench/."""
    found = {}
    for client in ("uv", "pip"):
        tool = ROOT / ".tools" / client / "bin" / client
        if not tool.exists():
            venv = ROOT / "bench" / f".venv-{client}"
            tool = venv / "bin" / client
            if not tool.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
                subprocess.run(
                    [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", client],
                    check=True,
                )
        found[client] = tool
    return Clients(found["uv"], found["pip"])


def install_time(
    client: str, clients: Clients, index_url: str, wanted: list[str], scratch_dir: str
) -> float:
    """Seconds for one install of ``wanted`` into a fresh venv with an empty cache."""
    with tempfile.TemporaryDirectory(prefix="tilsit-bench-install-", dir=scratch_dir) as scratch:
        venv, cache = Path(scratch) / "venv", Path(scratch) / "cache"
        env = {"PATH": os.environ["PATH"], "HOME": scratch}
        if client == "uv":
            subprocess.run(
                [str(clients.uv), "venv", "-q", "--python", sys.executable, str(venv)],
                check=True,
                env=env,
            )
            command = [str(clients.uv), "pip", "install", "--no-config", "--no-deps", "-q"]
            command += ["--python", str(venv / "bin" / "python"), "--cache-dir", str(cache)]
            command += ["--index-url", index_url, *wanted]
        else:
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
            command = [str(clients.pip), "--isolated", "--disable-pip-version-check"]
            command += ["--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q"]
            command += ["--cache-dir", str(cache), "--index-url", index_url, *wanted]
        return timed(command, env)


# --- the run ----------------------------------------------------------------------------


# measure -> server -> figures
Measured = dict[str, dict[str, dict[str, object]]]


@dataclass
class Results:
    started: str
    machine: dict[str, object]
    corpus: dict[str, object]
    settings: dict[str, object]
    load: Measured = field(default_factory=dict)
    installs: Measured = field(default_factory=dict)


def measure_load(
    servers: dict[str, str],
    targets: dict[str, tuple[str, dict[str, str], str]],
    args: argparse.Namespace,
) -> Measured:
    out: Measured = {}
    for target, (path, headers, content_type) in targets.items():
        out[target] = {}
        for server, url in servers.items():
            check_target(url + path, headers, content_type)
            wrk(url + path, headers, argparse.Namespace(**{**vars(args), "duration": 2}))
            out[target][server] = asdict(wrk(url + path, headers, args))
            print(f"  {target:<12} {server:<10} {out[target][server]}", flush=True)
    return out


def measure_installs(
    servers: dict[str, str], clients: Clients, wanted: list[str], args: argparse.Namespace
) -> Measured:
    out: Measured = {}
    for client in ("uv", "pip"):
        times: dict[str, list[float]] = {server: [] for server in servers}
        for run in range(args.install_runs):
            # Alternate servers and reverse the order every other run, so that drift
            # (the machine's other load, disk write-back) hits every server alike.
            order = list(servers.items())
            for server, url in order if run % 2 == 0 else reversed(order):
                index = f"{url}/simple/"
                times[server].append(install_time(client, clients, index, wanted, args.scratch))
        out[client] = {
            server: {"median_s": statistics.median(t), "runs_s": t} for server, t in times.items()
        }
        print(
            f"  {client:<4} "
            + ", ".join(f"{s} {statistics.median(t):.2f}s" for s, t in times.items()),
            flush=True,
        )
    return out


def profile(
    pid: int, url: str, headers: dict[str, str], args: argparse.Namespace, out: Path
) -> None:
    """py-spy samples of tilsit (one worker) while wrk loads the JSON page."""
    spy = shutil.which("py-spy") or str(ROOT / "bench" / ".venv-prof" / "bin" / "py-spy")
    if not Path(spy).exists():
        venv = ROOT / "bench" / ".venv-prof"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "py-spy"], check=True
        )
    record = subprocess.Popen(
        [
            *(spy, "record", "--pid", str(pid), "--duration", str(args.duration)),
            *("--rate", "250", "--format", "raw", "--output", str(out), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wrk(url, headers, args)
    record.wait(timeout=args.duration + 60)
    print(f"  profile (collapsed stacks): {out}")
    summarize_profile(out)


def summarize_profile(raw: Path, top: int = 25) -> None:
    """Own time and total time by function, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        count = int(count_s)
        samples += count
        frames = [re.sub(r" \(.*?\)$", "", f) for f in stack.split(";")]
        frames = [f"{f}" for f in frames]
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + count
    print(f"  {samples} samples; own time:")
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {100 * count / samples:5.1f}%  {frame}")
    print("  total time (function and its callees):")
    for frame, count in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {100 * count / samples:5.1f}%  {frame}")


def ratio_table(results: Results) -> str:
    """Ratios are tilsit/nginx, each against the nginx figure measured beside it."""
    head = f"{'measure':<20}{'tilsit':>10}{'nginx':>10}{'ratio':>8}"
    lines = [head + f"{'tilsit x2':>12}{'nginx':>10}{'ratio x2':>10}"]
    rows: list[tuple[str, dict[str, dict[str, object]], str, str]] = []
    for target, by_server in results.load.items():
        rows.append((f"{target} req/s", by_server, "requests_per_s", ".0f"))
        rows.append((f"{target} p99 ms", by_server, "p99_ms", ".1f"))
    for client, by_server in results.installs.items():
        rows.append((f"{client} install s", by_server, "median_s", ".2f"))
    for label, by_server, metric, spec in rows:
        v = {server: float(str(figures[metric])) for server, figures in by_server.items()}
        lines.append(
            f"{label:<20}{v['tilsit']:>10{spec}}{v['nginx']:>10{spec}}"
            f"{v['tilsit'] / v['nginx']:>8.2f}{v['tilsit-x2']:>12{spec}}{v['nginx-x2']:>10{spec}}"
            f"{v['tilsit-x2'] / v['nginx-x2']:>10.2f}"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=120, help="projects in the corpus")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--nginx-workers", default="auto", help="nginx worker_processes")
    parser.add_argument("--install-runs", type=int, default=5, help="installs per client/server")
    parser.add_argument(
        "--scratch",
        default=str(TMPFS) if TMPFS.is_dir() else None,
        help="where fresh venvs and caches go (default: tmpfs, to keep disk write-back out)",
    )
    parser.add_argument("--generated", action="store_true", help="ignore /opt/pypi/files")
    parser.add_argument("--profile", action="store_true", help="py-spy tilsit under load")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH (Debian: apt-get install {tool})")
    if not PERL_MODULE.exists():
        raise SystemExit("nginx's Perl module is missing (apt-get install libnginx-mod-http-perl)")
    if args.projects < 100:
        print("note: the issue asks for at least 100 projects", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="tilsit-bench-"))
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        data = work / "data"
        source = "generated"
        if REAL_WHEELS.is_dir() and not args.generated:
            wheels, source = real_wheels(args.projects), str(REAL_WHEELS)
        else:
            (work / "wheels").mkdir()
            wheels = generated_wheels(args.projects, work / "wheels")
        clients = find_clients()
        tilsit_cli(data, "init")  # other commands need a data directory
        tilsit_cli(data, "user", "create", "bench", "--admin")
        token = tilsit_cli(data, "token", "create", "--user", "bench")
        print(f"corpus: {len(wheels)} wheels from {source}; uploading...", flush=True)
        with tilsit_server(data, 1, work / "tilsit-1.log") as (url, _pid):
            started = time.perf_counter()
            stored, refused = upload_all(url, token, wheels)
            load_s = time.perf_counter() - started
        for line in refused:
            print(f"  refused {line}")
        print(f"  {len(stored)} stored in {load_s:.1f} s ({len(refused)} refused)", flush=True)
        if len(stored) < 100 and not args.generated and args.projects >= 100:
            print("warning: fewer than 100 projects stored", file=sys.stderr)
        big = min(stored, key=lambda w: abs(w.size - ONE_MIB))
        to_install = installable(stored, INSTALL_COUNT)
        wanted = [f"{w.name}=={w.version}" for w in to_install]
        page_project = canonicalize_name(to_install[0].name if to_install else stored[0].name)
        big_path = "/" + next(
            str(p.relative_to(data / "tree"))
            for p in (data / "tree" / "packages").rglob(big.path.name)
        )
        targets = {
            "json page": (
                f"/simple/{page_project}/",
                {"Accept": PIP_ACCEPT},
                "application/vnd.pypi.simple.v1+json",
            ),
            "html page": (f"/simple/{page_project}/", {}, "text/html"),
            "1 MiB file": (big_path, {}, "application/octet-stream"),
        }
        results = Results(
            started=stamp,
            machine={
                "cpus": os.cpu_count(),
                "loadavg_before": os.getloadavg(),
                "python": platform.python_version(),
                "nginx": subprocess.run(
                    ["nginx", "-v"], capture_output=True, text=True
                ).stderr.strip(),
            },
            corpus={
                "source": source,
                "wheels": len(stored),
                "refused": refused,
                "bytes": sum(w.size for w in stored),
                "load_seconds": load_s,
                "loaded_through": "POST /legacy/ to tilsit serve (real uploads)",
                "big_file": {"name": big.path.name, "size": big.size},
                "page_project": page_project,
                "installed": wanted,
            },
            settings=dict(vars(args)),
        )
        print(
            f"targets: {page_project} pages, {big.path.name} ({big.size} bytes); "
            f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s",
            flush=True,
        )
        # nginx serves the same tree throughout; each tilsit set-up is measured
        # next to it, so that each ratio compares figures taken minutes apart at most.
        with ExitStack() as stack:
            one, one_pid = stack.enter_context(tilsit_server(data, 1, work / "tilsit-1b.log"))
            nginx = stack.enter_context(
                nginx_server(data / "tree", one, work / "nginx", args.nginx_workers)
            )
            pair = {"tilsit": one, "nginx": nginx}
            print("load (tilsit 1 worker, nginx):", flush=True)
            load = measure_load(pair, targets, args)
            print("installs (tilsit 1 worker, nginx):", flush=True)
            installs = measure_installs(pair, clients, wanted, args)
            if args.profile:
                json_path, headers, _ = targets["json page"]
                profile(
                    one_pid, one + json_path, headers, args, results_dir / f"profile-{stamp}.txt"
                )
            with tilsit_server(data, 2, work / "tilsit-2.log") as (two, _pid):
                pair = {"tilsit-x2": two, "nginx-x2": nginx}
                print("load (tilsit 2 workers, nginx):", flush=True)
                load2 = measure_load(pair, targets, args)
                print("installs (tilsit 2 workers, nginx):", flush=True)
                installs2 = measure_installs(pair, clients, wanted, args)
        results.load = {t: {**load[t], **load2[t]} for t in load}
        results.installs = {c: {**installs[c], **installs2[c]} for c in installs}
        results.machine["loadavg_after"] = os.getloadavg()
        table = ratio_table(results)
        print("\n" + table)
        out = results_dir / f"readpath-{stamp}.json"
        out.write_text(json.dumps({**asdict(results), "table": table.splitlines()}, indent=2))
        print(f"\nresults: {out}")
    finally:
        if args.keep:
            print(f"data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
