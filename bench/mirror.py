"""Mirror and proxy indexes against their peers: bandersnatch, devpi and proxpi.

    .venv/bin/python bench/mirror.py [--projects N] [--workers 3,8] [--warm-runs N]

One upstream serves every client: a tilsit hosted index over TLS (a throwaway CA
made with trustme; absolute https file URLs, as PyPI's), loaded with readpath.py's
corpus (100+ real wheels from /opt/pypi/files when that exists, else generated
ones) through real uploads. Its access log (on, the default) counts what each
client asks of it. In one run:

1. **sync**: the wall time of ``tilsit mirror sync`` and of ``bandersnatch mirror``
   (configured as in tests/bandersnatch) with the same worker count, each into a
   fresh target, for each ``--workers``;
2. **no-op re-sync** of each target at once: its wall time and the requests the
   upstream logged for it (tilsit's summary states its own count too);
3. **proxies**: ``uv pip install --no-deps`` of 30 of the projects (pinned, fresh
   venv and empty uv cache each time) through a tilsit proxy index, devpi-server's
   root/pypi mirror and proxpi, each pointed at the upstream and the peers
   installed from PyPI into their own venvs under bench/. Cold is the first install
   through a fresh proxy (nothing cached); warm, the installs after it. The
   reference for warm: the same install from a tilsit hosted index holding the
   same 30 wheels, served as the proxy is (plain HTTP, one worker), and from the
   upstream itself (https).

Results go to stdout as a table with ratios and to bench/results/ as JSON.
Everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import trustme
from servers import free_port, stop, tilsit_cli, wait_until_up

# bench/ is sys.path[0] when this file is run as a script; readpath puts the repo
# root on sys.path as it is imported.
from readpath import (
    INSTALL_COUNT,
    REAL_WHEELS,
    ROOT,
    TMPFS,
    Wheel,
    find_clients,
    generated_wheels,
    installable,
    real_wheels,
    upload_all,
)

BANDERSNATCH_MAX_WORKERS = 10  # bandersnatch refuses more
# The proxies to compare with, each installed from PyPI into bench/.venv-<name>.
PEERS = {"devpi": ["devpi-server"], "proxpi": ["proxpi", "gunicorn"]}
# Nothing here is a secret: devpi's root password on a throwaway server on 127.0.0.1.
DEVPI_ROOT_PASSWORD = "bench"  # noqa: S105
LOCAL = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+" (?P<status>\d{3})')
# tilsit's summary: "mirror NAME: 3 project(s) synced, 0 unchanged, 0 removed, 0 failed;
# 3 file(s), 1.2 MiB fetched; 7 request(s); ..."
_SUMMARY = re.compile(
    r"(?P<synced>\d+) project\(s\) synced, (?P<unchanged>\d+) unchanged, .*?;"
    r" (?P<files>\d+) file\(s\), .*? fetched; (?P<requests>\d+) request\(s\);"
    r" (?P<seconds>[\d.]+) s"
)
_TO_SYNC = re.compile(r"(\d+) packages to sync\.")


class PeerFailed(RuntimeError):
    """A peer could not be installed, started, configured or used; the run goes on."""


# --- tools ------------------------------------------------------------------------------


def peer_venv(name: str, packages: list[str]) -> Path:
    """bench/.venv-<name> with ``packages`` from PyPI (made once, then reused)."""
    venv = ROOT / "bench" / f".venv-{name}"
    marker = venv / ".installed"
    if not marker.exists():
        print(f"installing {' '.join(packages)} into {venv}...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *packages],
                check=True,
                timeout=600,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise PeerFailed(f"cannot install {packages} into {venv}: {exc}") from exc
        marker.touch()
    return venv


def dist_version(venv: Path, dist: str) -> str:
    return subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            f"import importlib.metadata as m; print(m.version({dist!r}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def newest_python() -> str:
    """bandersnatch 7+ needs Python >= 3.12 (as in scripts/install-clients)."""
    for candidate in ("python3.14", "python3.13", "python3.12"):
        found = shutil.which(candidate)
        if found and subprocess.run([found, "-V"], capture_output=True).returncode == 0:
            return found
    return sys.executable


def find_bandersnatch() -> Path:
    """``.tools/bandersnatch`` (scripts/install-clients), else bench/.venv-bandersnatch."""
    tool = ROOT / ".tools" / "bandersnatch" / "bin" / "bandersnatch"
    if tool.exists():
        return tool
    venv = ROOT / "bench" / ".venv-bandersnatch"
    if not (venv / "bin" / "bandersnatch").exists():
        subprocess.run([newest_python(), "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "bandersnatch"],
            check=True,
        )
    return venv / "bin" / "bandersnatch"


def tilsit_version() -> str:
    """The commit measured, and whether the work tree differed from it."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{head or 'unknown'}{' (modified)' if dirty else ''}"


def tool_version(program: Path) -> str:
    result = subprocess.run([str(program), "--version"], capture_output=True, text=True)
    return (result.stdout + result.stderr).strip().splitlines()[0]


def bytecode_cache() -> None:
    """Give every tilsit process compiled bytecode, as a pip-installed tilsit has.

    The repo's .venv holds no .pyc (uv installs without compiling, and this machine sets
    PYTHONDONTWRITEBYTECODE), so each tilsit command would compile SQLAlchemy and the
    rest from source: about 1.3 s more per start here, which bandersnatch (whose venv
    pip compiled) does not pay. The cache lives outside the source tree, under
    bench/.venv-pycache (gitignored), and is filled here, before anything is timed.
    """
    cache = ROOT / "bench" / ".venv-pycache"
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(cache)
    paths = sysconfig.get_paths()
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j0", paths["purelib"], str(ROOT / "src")],
        stdout=subprocess.DEVNULL,
        check=False,  # a stray file that does not compile must not stop the bench
    )
    # The standard library's modules are compiled into the cache as the untimed
    # set-up (user, token, servers, uploads) first imports them.


# --- TLS and the upstream ----------------------------------------------------------------


@dataclass
class Tls:
    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> Tls:
    """A throwaway CA and its certificate for 127.0.0.1."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    directory.mkdir(parents=True, exist_ok=True)
    tls = Tls(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(tls.ca))
    issued.private_key_and_cert_chain_pem.write_to_path(str(tls.cert))
    issued.private_key_pem.write_to_path(str(tls.key))
    return tls


@dataclass
class Upstream:
    """The upstream tilsit server and its access log."""

    url: str
    log: Path

    @property
    def simple(self) -> str:
        return f"{self.url}/simple/"

    def mark(self) -> int:
        return self.log.stat().st_size

    def requests(self, since: int) -> list[str]:
        """``METHOD path status`` of each request logged after ``since``."""
        time.sleep(0.3)  # the last access line is written as the response goes out
        with self.log.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace")
        return [f"{m['method']} {m['target']} {m['status']}" for m in _ACCESS.finditer(text)]


@contextmanager
def tilsit_serve(
    data: Path,
    log: Path,
    *,
    workers: int = 1,
    tls: Tls | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """``tilsit serve`` as it ships (access log on); over TLS with absolute URLs if ``tls``."""
    port = port or free_port()
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tilsit", "serve", "--data", str(data), "--port", str(port)]
    command += ["--workers", str(workers)]
    env = {**os.environ, **LOCAL, "TILSIT_ACCESS_LOG": "true", "PYTHONUNBUFFERED": "1"}
    if tls:
        command += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
        env["TILSIT_BASE_URL"] = url
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_up(f"{url}/_/health", process, log)
        yield url
    finally:
        stop(process)


# --- sync --------------------------------------------------------------------------------


@dataclass
class SyncRun:
    seconds: float
    upstream_requests: int  # counted in the upstream's access log
    reported_requests: int | None  # what the client says (tilsit's summary)
    reported_seconds: float | None  # the same: the sync itself, without process start
    projects: int | None  # synced
    files: int  # release files in the target afterwards
    output_tail: list[str]
    logged: list[str]  # the upstream's access log lines, when a few (no-op runs)


def timed_run(
    command: list[str], env: dict[str, str], timeout: int, cwd: Path | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    os.sync()  # the previous run's write-back must not land in this one's time
    started = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )
    return time.perf_counter() - started, result


def _tail(result: subprocess.CompletedProcess[str], lines: int = 3) -> list[str]:
    return (result.stdout + result.stderr).strip().splitlines()[-lines:]


def _failed(what: str, result: subprocess.CompletedProcess[str]) -> SystemExit:
    return SystemExit(
        f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


def tilsit_sync(target: Path, upstream: Upstream, tls: Tls, workers: int) -> list[SyncRun]:
    """A full sync into a fresh data directory, then a no-op re-sync."""
    tilsit_cli(target, "init")  # commands other than init and serve need a data directory
    tilsit_cli(
        target, "index", "create", "mirror", "--mirror", upstream.simple, "--ca-bundle", str(tls.ca)
    )
    command = [sys.executable, "-m", "tilsit", "mirror", "sync", "mirror", "--no-progress"]
    command += ["--workers", str(workers), "--data", str(target)]
    runs = []
    for _ in ("full", "no-op"):
        mark = upstream.mark()
        seconds, result = timed_run(command, {**os.environ, **LOCAL}, timeout=1800)
        if result.returncode != 0:
            raise _failed("tilsit mirror sync", result)
        summary = _SUMMARY.search(result.stdout)
        if summary is None:
            raise SystemExit(f"cannot read tilsit's summary:\n{result.stdout}")
        files = sum(1 for p in (target / "tree" / "packages").rglob("*") if _release_file(p))
        logged = upstream.requests(mark)
        runs.append(
            SyncRun(
                seconds,
                len(logged),
                int(summary["requests"]),
                float(summary["seconds"]),
                int(summary["synced"]),
                files,
                _tail(result, 1),
                logged if len(logged) <= 10 else [],
            )
        )
    return runs


def _release_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith((".whl", ".tar.gz", ".zip"))


def bandersnatch_sync(
    root: Path, program: Path, upstream: Upstream, tls: Tls, workers: int
) -> list[SyncRun]:
    """bandersnatch as tests/bandersnatch configures it: a full sync, then a no-op one."""
    directory = root / "mirror"
    config = root / "bandersnatch.conf"
    root.mkdir(parents=True)
    config.write_text(
        "[mirror]\n"
        f"directory = {directory}\n"
        f"master = {upstream.url}\n"
        "storage-backend = filesystem\n"
        "api-method = simple\n"
        f"workers = {workers}\n"
        "verifiers = 3\n"
        "timeout = 60\n"
        "global-timeout = 1800\n"
        "stop-on-error = true\n"
        "json = true\n"
        "release-files = true\n"
        "hash-index = false\n"
        "simple-format = ALL\n"
        "compare-method = hash\n"
        "digest_name = sha256\n"
    )
    home = root / "home"
    home.mkdir()
    # No *_PROXY at all: bandersnatch hands one to aiohttp, which ignores NO_PROXY.
    env = {
        "PATH": f"{program.parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "SSL_CERT_FILE": str(tls.ca),
    }
    runs = []
    for _ in ("full", "no-op"):
        mark = upstream.mark()
        seconds, result = timed_run(
            [str(program), "--config", str(config), "mirror"], env, timeout=1800, cwd=root
        )
        log = result.stdout + result.stderr
        if result.returncode != 0 or " ERROR: " in log:
            raise _failed("bandersnatch mirror", result)
        counts = _TO_SYNC.findall(log)
        files = sum(1 for p in (directory / "web" / "packages").rglob("*") if _release_file(p))
        logged = upstream.requests(mark)
        runs.append(
            SyncRun(
                seconds,
                len(logged),
                None,
                None,
                int(counts[-1]) if counts else None,
                files,
                _tail(result, 1),
                logged if len(logged) <= 10 else [],
            )
        )
    return runs


# --- proxies -----------------------------------------------------------------------------


def peer_env(home: Path, tls: Tls, **extra: str) -> dict[str, str]:
    """A peer server's environment: trusts the test CA (requests and httpx), no proxies."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "REQUESTS_CA_BUNDLE": str(tls.ca),
        "SSL_CERT_FILE": str(tls.ca),
        **LOCAL,
        **extra,
    }


def popen_server(
    stack: ExitStack, command: list[str], env: dict[str, str], log: Path, health: str
) -> None:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    stack.callback(stop, process)
    try:
        wait_until_up(health, process, log)
    except SystemExit as exc:
        raise PeerFailed(str(exc)) from exc


@dataclass
class Setting:
    """How to start a fresh instance of one proxy: ``start(stack, n)`` -> index URL."""

    name: str
    start: Callable[[ExitStack, int], str]
    version: str


@contextmanager
def python_path(src: Path | None) -> Iterator[None]:
    """Run tilsit from ``src`` (another checkout's src/) in what starts inside; None: as is."""
    if src is None:
        yield
        return
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src)
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def tilsit_proxy(work: Path, upstream: Upstream, tls: Tls, src: Path | None = None) -> Setting:
    """A tilsit proxy index; from ``src`` (``--baseline``) it is "tilsit baseline"."""
    slug = "tilsit-proxy" if src is None else "tilsit-baseline"

    def start(stack: ExitStack, n: int) -> str:
        data = work / f"{slug}-{n}"
        with python_path(src):
            tilsit_cli(data, "init")
            proxy = ("--proxy", upstream.simple, "--ca-bundle", str(tls.ca))
            tilsit_cli(data, "index", "create", "proxy", *proxy)
            url = stack.enter_context(tilsit_serve(data, work / f"{slug}-{n}.log"))
        return f"{url}/proxy/simple/"

    if src is None:
        return Setting("tilsit proxy", start, tilsit_version())
    commit = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return Setting("tilsit baseline", start, commit or str(src))


def devpi(work: Path, upstream: Upstream, tls: Tls, venv: Path) -> Setting:
    bin_dir = venv / "bin"

    def start(stack: ExitStack, n: int) -> str:
        serverdir = work / f"devpi-{n}"
        env = peer_env(work / "devpi-home", tls)
        command = [str(bin_dir / "devpi-init"), "--serverdir", str(serverdir), "--no-root-pypi"]
        init = subprocess.run(
            [*command, "--root-passwd", DEVPI_ROOT_PASSWORD],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        if init.returncode != 0:
            raise PeerFailed(f"devpi-init failed:\n{init.stdout}{init.stderr}")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [str(bin_dir / "devpi-server"), "--serverdir", str(serverdir)]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        popen_server(stack, command, env, work / f"devpi-{n}.log", f"{url}/+api")
        # root/pypi as devpi-init would make it, but mirroring the upstream.
        response = httpx.put(
            f"{url}/root/pypi",
            json={"type": "mirror", "mirror_url": upstream.simple, "title": "tilsit upstream"},
            auth=("root", DEVPI_ROOT_PASSWORD),
            headers={"Accept": "application/json"},
            timeout=30,
        )
        if response.status_code not in (200, 201):
            raise PeerFailed(f"devpi: PUT /root/pypi: {response.status_code} {response.text}")
        return f"{url}/root/pypi/+simple/"

    return Setting("devpi", start, dist_version(venv, "devpi-server"))


def proxpi(work: Path, upstream: Upstream, tls: Tls, venv: Path, threads: int) -> Setting:

    def start(stack: ExitStack, n: int) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = peer_env(
            work / "proxpi-home",
            tls,
            PROXPI_INDEX_URL=upstream.simple,
            PROXPI_CACHE_DIR=str(work / f"proxpi-{n}"),
            # Past this many seconds of a file download proxpi redirects the client to
            # the upstream's URL instead (default 0.9 s); the bench measures proxpi
            # serving, and uv, which does not trust the test CA, would fail there.
            PROXPI_DOWNLOAD_TIMEOUT="300",
        )
        command = [str(venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}"]
        command += ["--threads", str(threads), "proxpi.server:app"]
        popen_server(stack, command, env, work / f"proxpi-{n}.log", f"{url}/health")
        return f"{url}/index/"

    return Setting("proxpi", start, dist_version(venv, "proxpi"))


class InstallFailed(RuntimeError):
    pass


def uv_install(
    uv: Path, index_url: str, wanted: list[str], scratch_dir: str, **extra_env: str
) -> float:
    """Seconds for ``uv pip install --no-deps`` of ``wanted`` into a fresh venv, empty cache."""
    with tempfile.TemporaryDirectory(prefix="tilsit-bench-install-", dir=scratch_dir) as scratch:
        venv, cache = Path(scratch) / "venv", Path(scratch) / "cache"
        env = {"PATH": os.environ["PATH"], "HOME": scratch, **extra_env}
        subprocess.run(
            [str(uv), "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env
        )
        command = [str(uv), "pip", "install", "--no-config", "--no-deps", "-q"]
        command += ["--python", str(venv / "bin" / "python"), "--cache-dir", str(cache)]
        command += ["--index-url", index_url, *wanted]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise InstallFailed(f"uv pip install from {index_url}:\n{result.stderr[-3000:]}")
        return elapsed


@dataclass
class ProxyFigures:
    version: str = ""
    cold_s: list[float] = field(default_factory=list)
    warm_s: list[float] = field(default_factory=list)
    upstream_requests_cold: list[int] = field(default_factory=list)
    upstream_requests_warm: list[int] = field(default_factory=list)
    error: str | None = None


def measure_proxies(
    settings: list[Setting],
    references: dict[str, tuple[str, dict[str, str]]],
    upstream: Upstream,
    uv: Path,
    wanted: list[str],
    args: argparse.Namespace,
) -> dict[str, ProxyFigures]:
    """Cold installs through fresh proxies, then warm installs through all and the references."""
    figures = {s.name: ProxyFigures(version=s.version) for s in settings}
    live: dict[str, tuple[ExitStack, str]] = {}
    try:
        for run in range(args.cold_runs):
            for setting in settings if run % 2 == 0 else list(reversed(settings)):
                out = figures[setting.name]
                if out.error:
                    continue
                if setting.name in live:
                    live.pop(setting.name)[0].close()
                stack = ExitStack()
                try:
                    url = setting.start(stack, run)
                    mark = upstream.mark()
                    out.cold_s.append(uv_install(uv, url, wanted, args.scratch))
                    out.upstream_requests_cold.append(len(upstream.requests(mark)))
                except (PeerFailed, InstallFailed, subprocess.CalledProcessError) as exc:
                    out.error = str(exc)
                    print(f"  {setting.name}: FAILED: {exc}", flush=True)
                    stack.close()
                    continue
                live[setting.name] = (stack, url)
                print(f"  cold {setting.name:<14} {out.cold_s[-1]:6.2f} s", flush=True)
        urls: dict[str, tuple[str, dict[str, str]]] = {
            name: (url, {}) for name, (_stack, url) in live.items()
        }
        urls.update(references)
        for name in references:
            figures[name] = ProxyFigures(version=tilsit_version())
        for run in range(args.warm_runs):
            order = list(urls.items())
            for name, (url, env) in order if run % 2 == 0 else reversed(order):
                mark = upstream.mark()
                try:
                    figures[name].warm_s.append(uv_install(uv, url, wanted, args.scratch, **env))
                except InstallFailed as exc:
                    figures[name].error = str(exc)
                    raise SystemExit(f"warm install through {name} failed: {exc}") from exc
                figures[name].upstream_requests_warm.append(len(upstream.requests(mark)))
            print(
                f"  warm run {run + 1}: "
                + ", ".join(f"{n} {figures[n].warm_s[-1]:.2f}s" for n in urls),
                flush=True,
            )
    finally:
        for stack, _url in live.values():
            stack.close()
    return figures


# --- the run -----------------------------------------------------------------------------


# tool -> "full" or "noop" -> one SyncRun (as a dict) per run
SyncFigures = dict[str, dict[str, list[dict[str, object]]]]


@dataclass
class Results:
    started: str
    machine: dict[str, object]
    corpus: dict[str, object]
    settings: dict[str, object]
    versions: dict[str, str] = field(default_factory=dict)
    sync: dict[str, SyncFigures] = field(default_factory=dict)  # by worker count
    proxies: dict[str, dict[str, object]] = field(default_factory=dict)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _cell(value: float | None, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def _sync_median(runs: list[dict[str, object]], key: str) -> float | None:
    values = [float(str(r[key])) for r in runs if r.get(key) is not None]
    return _median(values)


def table(results: Results) -> str:
    lines = []
    for workers, by_tool in results.sync.items():
        tilsit, bander = by_tool.get("tilsit", {}), by_tool.get("bandersnatch", {})
        lines.append(
            f"{f'sync, {workers} workers (median)':<34}{'tilsit':>10}{'bandersnatch':>14}{'b/t':>8}"
        )
        for label, phase, key, spec in (
            ("full sync s", "full", "seconds", ".2f"),
            ("  of which the sync (tilsit says)", "full", "reported_seconds", ".2f"),
            ("no-op re-sync s", "noop", "seconds", ".2f"),
            ("  of which the sync (tilsit says)", "noop", "reported_seconds", ".2f"),
            ("no-op requests (upstream log)", "noop", "upstream_requests", ".0f"),
            ("no-op requests (tilsit says)", "noop", "reported_requests", ".0f"),
            ("release files in target", "full", "files", ".0f"),
        ):
            tv = _sync_median(tilsit.get(phase, []), key)
            bv = _sync_median(bander.get(phase, []), key)
            ratio = _ratio(bv, tv) if key == "seconds" else None
            lines.append(
                f"  {label:<32}{_cell(tv, spec, 10)}{_cell(bv, spec, 14)}{_cell(ratio, '.2f', 8)}"
            )
        lines.append("")
    names = list(results.proxies)
    if not names:
        return "\n".join([*lines, *goals(results, {})])
    head = f"{'uv install, 30 projects':<34}" + "".join(f"{n:>16}" for n in names)
    lines.append(head)
    figures = {n: ProxyFigures(**results.proxies[n]) for n in names}  # type: ignore[arg-type]
    base = figures.get("tilsit proxy")
    rows: list[tuple[str, Callable[[ProxyFigures], float | None], str]] = [
        ("cold s (median)", lambda f: _median(f.cold_s), ".2f"),
        ("warm s (median)", lambda f: _median(f.warm_s), ".2f"),
        (
            "cold / tilsit proxy cold",
            lambda f: _ratio(_median(f.cold_s), _median(base.cold_s) if base else None),
            ".2f",
        ),
        (
            "warm / tilsit proxy warm",
            lambda f: _ratio(_median(f.warm_s), _median(base.warm_s) if base else None),
            ".2f",
        ),
        (
            "upstream requests, cold",
            lambda f: _median([float(x) for x in f.upstream_requests_cold]),
            ".0f",
        ),
        (
            "upstream requests, warm",
            lambda f: _median([float(x) for x in f.upstream_requests_warm]),
            ".0f",
        ),
    ]
    for label, metric, spec in rows:
        lines.append(f"  {label:<32}" + "".join(_cell(metric(figures[n]), spec, 16) for n in names))
    lines += ["", *goals(results, figures)]
    failed = [f"  {n}: {(figures[n].error or '').strip()[:200]}" for n in names if figures[n].error]
    if failed:
        lines += ["failed:", *failed]
    return "\n".join(lines)


def goals(results: Results, figures: dict[str, ProxyFigures]) -> list[str]:
    """The issue's three goals, each with the figure that meets it or not."""
    lines = ["goals:"]
    for workers, by_tool in results.sync.items():
        t = _sync_median(by_tool.get("tilsit", {}).get("full", []), "seconds")
        b = _sync_median(by_tool.get("bandersnatch", {}).get("full", []), "seconds")
        speedup = _ratio(b, t)
        if speedup is not None:
            verdict = "met" if speedup >= 2 else "NOT met"
            lines.append(
                f"  sync >= 2x bandersnatch, {workers} workers: {speedup:.2f}x ({verdict})"
            )
        noop = _sync_median(by_tool.get("tilsit", {}).get("noop", []), "upstream_requests")
        if noop is not None:
            verdict = "met" if noop == 1 else "NOT met"
            lines.append(f"  no-op sync = 1 request, {workers} workers: {noop:.0f} ({verdict})")
    proxy, hosted = figures.get("tilsit proxy"), figures.get("tilsit hosted")
    warm = _ratio(_median(proxy.warm_s), _median(hosted.warm_s)) if proxy and hosted else None
    if warm is not None:
        lines.append(f"  warm proxy = hosted read path: proxy/hosted {warm:.2f}")
    return lines


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=120, help="projects in the corpus")
    parser.add_argument(
        "--workers",
        default="3,8",
        help="comma-separated worker counts for the sync comparison (bandersnatch: at most 10)",
    )
    parser.add_argument("--sync-runs", type=int, default=3, help="syncs per tool and count")
    parser.add_argument("--upstream-workers", type=int, default=2, help="upstream's workers")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold installs per proxy")
    parser.add_argument("--warm-runs", type=int, default=7, help="warm installs per server")
    parser.add_argument("--proxpi-threads", type=int, default=8, help="gunicorn threads")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated: any of bandersnatch, devpi, proxpi, sync, proxies",
    )
    parser.add_argument(
        "--scratch",
        default=str(TMPFS) if TMPFS.is_dir() else None,
        help="where install venvs and uv caches go (default: tmpfs)",
    )
    parser.add_argument("--generated", action="store_true", help="ignore /opt/pypi/files")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout's src/: its tilsit proxy is measured beside this one's",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--no-pycache",
        action="store_true",
        help="run tilsit without the bytecode cache (as the repo's .venv stands)",
    )
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",") if w]
    if any(not 1 <= w <= BANDERSNATCH_MAX_WORKERS for w in args.workers):
        parser.error(f"--workers: each between 1 and {BANDERSNATCH_MAX_WORKERS}")
    args.skip = {s for s in args.skip.split(",") if s}
    return args


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="tilsit-bench-mirror-"))
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        # Everything that may talk to PyPI first: SSL_CERT_FILE is set to the test CA below.
        clients = find_clients()
        bandersnatch = find_bandersnatch() if "bandersnatch" not in args.skip else None
        venvs: dict[str, Path | PeerFailed] = {}
        for name, packages in PEERS.items():
            if name not in args.skip and "proxies" not in args.skip:
                try:
                    venvs[name] = peer_venv(name, packages)
                except PeerFailed as exc:
                    venvs[name] = exc
        if not args.no_pycache:
            bytecode_cache()
        tls = make_tls(work / "tls")
        os.environ["SSL_CERT_FILE"] = str(tls.ca)  # this process's httpx trusts the upstream
        versions = {"uv": tool_version(clients.uv)}
        if bandersnatch:
            versions["bandersnatch"] = tool_version(bandersnatch)

        source = "generated"
        if REAL_WHEELS.is_dir() and not args.generated:
            wheels, source = real_wheels(args.projects), str(REAL_WHEELS)
        else:
            (work / "wheels").mkdir()
            wheels = generated_wheels(args.projects, work / "wheels")
        upstream_data = work / "upstream"
        tilsit_cli(upstream_data, "init")
        tilsit_cli(upstream_data, "user", "create", "bench", "--admin")
        token = tilsit_cli(upstream_data, "token", "create", "--user", "bench")
        with ExitStack() as stack:
            url = stack.enter_context(
                tilsit_serve(
                    upstream_data,
                    work / "upstream.log",
                    workers=args.upstream_workers,
                    tls=tls,
                )
            )
            upstream = Upstream(url, work / "upstream.log")
            print(f"corpus: {len(wheels)} wheels from {source}; uploading to {url}...", flush=True)
            started = time.perf_counter()
            stored, refused = upload_all(url, token, wheels)
            load_s = time.perf_counter() - started
            for line in refused:
                print(f"  refused {line}")
            print(f"  {len(stored)} stored in {load_s:.1f} s ({len(refused)} refused)", flush=True)
            if len(stored) < 100 and not args.generated and args.projects >= 100:
                print("warning: fewer than 100 projects stored", file=sys.stderr)
            to_install = installable(stored, INSTALL_COUNT)
            wanted = [f"{w.name}=={w.version}" for w in to_install]
            results = Results(
                started=stamp,
                machine={
                    "cpus": os.cpu_count(),
                    "loadavg_before": os.getloadavg(),
                    "python": platform.python_version(),
                },
                corpus={
                    "source": source,
                    "wheels": len(stored),
                    "refused": refused,
                    "bytes": sum(w.size for w in stored),
                    "load_seconds": load_s,
                    "loaded_through": "POST /legacy/ to tilsit serve over TLS (real uploads)",
                    "installed": wanted,
                },
                settings={
                    **vars(args),
                    "skip": sorted(args.skip),
                    "baseline": str(args.baseline or ""),
                },
                versions=versions,
            )
            if "sync" not in args.skip:
                results.sync = measure_sync(work, upstream, tls, bandersnatch, args)
            if "proxies" not in args.skip:
                results.proxies = run_proxies(
                    work, upstream, tls, clients.uv, to_install, venvs, args
                )
                results.versions.update({n: str(f["version"]) for n, f in results.proxies.items()})
        results.machine["loadavg_after"] = os.getloadavg()
        text = table(results)
        print("\n" + text)
        out = results_dir / f"mirror-{stamp}.json"
        out.write_text(json.dumps({**asdict(results), "table": text.splitlines()}, indent=2))
        print(f"\nresults: {out}")
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def measure_sync(
    work: Path,
    upstream: Upstream,
    tls: Tls,
    bandersnatch: Path | None,
    args: argparse.Namespace,
) -> dict[str, SyncFigures]:
    """Per worker count: each tool's full and no-op runs, alternating which goes first."""
    out: dict[str, SyncFigures] = {}
    tools = ["tilsit", "bandersnatch"] if bandersnatch else ["tilsit"]
    for i, workers in enumerate(args.workers):
        print(f"sync, {workers} workers:", flush=True)
        by_tool: SyncFigures = {tool: {"full": [], "noop": []} for tool in tools}
        for run in range(args.sync_runs):
            for tool in tools if (i + run) % 2 == 0 else reversed(tools):
                target = work / f"{tool}-w{workers}-{run}"
                if tool == "tilsit":
                    full, noop = tilsit_sync(target, upstream, tls, workers)
                else:
                    assert bandersnatch is not None
                    full, noop = bandersnatch_sync(target, bandersnatch, upstream, tls, workers)
                shutil.rmtree(target, ignore_errors=True)
                by_tool[tool]["full"].append(asdict(full))
                by_tool[tool]["noop"].append(asdict(noop))
                print(
                    f"  {tool:<13} full {full.seconds:6.2f} s ({full.upstream_requests} requests,"
                    f" {full.files} files); no-op {noop.seconds:5.2f} s"
                    f" ({noop.upstream_requests} requests)",
                    flush=True,
                )
        out[str(workers)] = by_tool
    return out


def run_proxies(
    work: Path,
    upstream: Upstream,
    tls: Tls,
    uv: Path,
    to_install: list[Wheel],
    venvs: dict[str, Path | PeerFailed],
    args: argparse.Namespace,
) -> dict[str, dict[str, object]]:
    wanted = [f"{w.name}=={w.version}" for w in to_install]
    settings = [tilsit_proxy(work, upstream, tls)]
    if args.baseline is not None:
        settings.append(tilsit_proxy(work, upstream, tls, args.baseline))
    failed: dict[str, str] = {}
    peers: dict[str, Callable[[Path], Setting]] = {
        "devpi": lambda venv: devpi(work, upstream, tls, venv),
        "proxpi": lambda venv: proxpi(work, upstream, tls, venv, args.proxpi_threads),
    }
    for name, venv in venvs.items():
        try:
            if isinstance(venv, PeerFailed):
                raise venv
            settings.append(peers[name](venv))
        except (PeerFailed, subprocess.CalledProcessError) as exc:
            failed[name] = str(exc)
            print(f"  {name}: FAILED: {exc}", flush=True)
    print(f"proxies: uv pip install --no-deps of {len(wanted)} projects", flush=True)
    # The reference: a hosted index with the same 30 wheels, served as the proxy is.
    hosted = work / "hosted"
    tilsit_cli(hosted, "init")
    tilsit_cli(hosted, "user", "create", "bench", "--admin")
    token = tilsit_cli(hosted, "token", "create", "--user", "bench")
    with tilsit_serve(hosted, work / "hosted.log") as hosted_url:
        _stored, refused = upload_all(hosted_url, token, to_install)
        if refused:
            raise SystemExit(f"the hosted reference refused uploads: {refused}")
        references = {
            "tilsit hosted": (f"{hosted_url}/simple/", {}),
            "upstream https": (upstream.simple, {"SSL_CERT_FILE": str(tls.ca)}),
        }
        figures = measure_proxies(settings, references, upstream, uv, wanted, args)
    for name, error in failed.items():
        figures[name] = ProxyFigures(error=error)
    return {name: asdict(f) for name, f in figures.items()}


if __name__ == "__main__":
    main()
