"""How ``tilsit verify`` reads targets: streaming and bounded by the signed length, and on a
proxy index, files the proxy has not fetched yet are noted as such, not as faults.

Memory is measured on the verify subprocess itself (its peak resident set, ``VmHWM``),
against a run over the same server that reads only small files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import LiveServer, create_database, start_server, stop
from tests.proxy.test_files import eventually
from tests.trust.signed import INDEX, Signed, copy_tree, faults, http_server, signed_tree
from tilsit.config import Settings, load_settings
from tilsit.index.manage import create_index
from tilsit.instance import open_instance
from tilsit.store.tree import file_path

MiB = 1 << 20
BIG = 48 * MiB
JSON = "application/vnd.pypi.simple.v1+json"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes


# Runs `tilsit verify` and, at exit, prints the process's VmHWM (peak resident memory).
# Not ru_maxrss: Linux carries that across exec, so a child forked from this (large) test
# process would report the test process's size.
_MEASURED = """
import atexit, runpy, sys
def peak():
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmHWM:"))
    print("PEAK-KIB", line.split()[1], file=sys.stderr)
atexit.register(peak)
sys.argv = ["tilsit", "verify", *sys.argv[1:]]
runpy.run_module("tilsit", run_name="__main__", alter_sys=True)
"""


def verify_measured(*args: str, timeout: float = 300) -> Run:
    """``tilsit verify …`` in a subprocess, with its peak resident memory."""
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = result.stderr.splitlines()
    assert lines and lines[-1].startswith("PEAK-KIB "), result.stderr
    return Run(
        result.returncode,
        result.stdout,
        "\n".join(lines[:-1]),
        int(lines[-1].split()[1]) * 1024,
    )


@pytest.fixture
def signed(settings: Settings, tmp_path: Path) -> Iterator[Signed]:
    server: LiveServer = start_server(settings, tmp_path / "server.log")
    try:
        yield signed_tree(server)
    finally:
        stop(server)


def test_a_large_target_is_verified_in_bounded_memory(signed: Signed) -> None:
    big = make_wheel("big", "1.0", members={"big/blob.bin": os.urandom(BIG)})
    signed.upload(big)
    args = (signed.server.url, "--index", INDEX, "--root", str(signed.root), "--fresh", "--json")
    small = verify_measured(*args, "--project", "foo")
    assert small.returncode == 0, small.stdout + small.stderr
    large = verify_measured(*args, "--project", "big")
    assert large.returncode == 0, large.stdout + large.stderr
    report = json.loads(large.stdout)
    assert report["bytes_checked"] > len(big.data)
    # Both names of the wheel were read: the hashed copy and the plain name pip fetches.
    assert report["plain_checked"] == report["targets_checked"]
    # Reading whole files into memory (the old `data += chunk`) grows by at least the
    # file's size; a streaming read by a few chunks.
    growth = large.peak_rss - small.peak_rss
    assert growth < 12 * MiB, f"peak RSS grew by {growth / MiB:.1f} MiB for a {BIG // MiB} MiB file"


def test_a_plain_name_longer_than_signed_is_refused_unread(signed: Signed, tmp_path: Path) -> None:
    wheel = next(d for d in signed.dists if d.filename.endswith(".whl"))
    copy = copy_tree(signed.tree, tmp_path / "copy")
    plain = copy / file_path(wheel.sha256, wheel.filename)
    # A new file at the plain name (the hashed name, a hard link of the old one, keeps
    # the signed bytes): the signed bytes, then 256 MiB more (sparse, cheap to make).
    plain.unlink()
    plain.write_bytes(wheel.data)
    os.truncate(plain, len(wheel.data) + 256 * MiB)
    with http_server(copy) as url:
        run = verify_measured(url, "--index", INDEX, "--root", str(signed.root), "--fresh")
        baseline = verify_measured(
            url, "--index", INDEX, "--root", str(signed.root), "--fresh", "--project", "bar-baz"
        )
    assert run.returncode == 1, run.stdout + run.stderr
    assert faults(subprocess.CompletedProcess([], 1, run.stdout, "")) == ["tampered file"]
    assert f"more than the signed length of {len(wheel.data)} bytes" in run.stdout
    assert "reading stopped" in run.stdout
    assert baseline.returncode == 0, baseline.stdout
    growth = run.peak_rss - baseline.peak_rss
    assert growth < 12 * MiB, f"peak RSS grew by {growth / MiB:.1f} MiB"


# --- a proxy index ------------------------------------------------------------------------

# The proxy's upstream client honours *_PROXY variables: keep 127.0.0.1 direct.
_DIRECT = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@dataclass
class ProxySetup:
    upstream: LiveServer
    downstream: LiveServer
    index: str

    @property
    def root(self) -> Path:
        return self.downstream.settings.tree_dir / self.index / "tuf" / "1.root.json"

    def verify(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tilsit", "verify", self.downstream.url, "--index",
             self.index, "--root", str(self.root), "--fresh", "--json"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip


@pytest.fixture
def proxied(postgres_base: str | None, tmp_path: Path) -> Iterator[ProxySetup]:
    servers: list[LiveServer] = []
    try:
        for name in ("upstream", "downstream"):
            (tmp_path / name).mkdir()
            settings = load_settings(
                overrides={
                    "data": tmp_path / name / "data",
                    "database_url": create_database(postgres_base),
                },
                environ={},
            )
            servers.append(start_server(settings, tmp_path / name / "server.log", env=_DIRECT))
        upstream, downstream = servers
        signed = signed_tree(upstream)  # foo 1.0 (wheel, sdist), bar-baz 0.1
        assert signed.dists
        instance = open_instance(downstream.settings)
        try:
            with instance.db.write() as session:
                create_index(
                    session,
                    "px",
                    "proxy",
                    actor="test",
                    options={"upstream": f"{upstream.url}/simple/"},
                )
            instance.renderer.catch_up()
        finally:
            instance.close()
        yield ProxySetup(upstream, downstream, "px")
    finally:
        for server in servers:
            stop(server)


def _catch_ups(server: str) -> int:
    """How many catch-ups the proxy's writes have had (/_/health)."""
    answer = httpx.get(f"{server}/_/health", timeout=30)
    assert answer.status_code == 200, answer.text
    count: int = answer.json()["proxy_writes"]["catch_ups"]
    return count


def test_a_proxy_reports_files_not_yet_fetched(proxied: ProxySetup) -> None:
    down = proxied.downstream.url
    before = _catch_ups(down)
    page = httpx.get(f"{down}/px/simple/foo/", headers={"Accept": JSON}, timeout=30)
    assert page.status_code == 200, page.text
    files = {f["filename"]: f["url"] for f in page.json()["files"]}
    assert len(files) == 2
    # The proxy answers once the page's rows commit; its tree and TUF metadata follow at
    # the end of the burst: verify (which reads the plain names too) waits for that.
    eventually(lambda: _catch_ups(down) > before, "the proxy's catch-up")

    # The proxy has the page (signed) but neither file: nothing is wrong, two are pending.
    first = proxied.verify()
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads(first.stdout)
    assert report["faults"] == []
    wheel = next(name for name in files if name.endswith(".whl"))
    pending = sorted([*files, f"{wheel}.metadata"])
    assert sorted(p.rsplit("/", 1)[1] for p in report["not_yet_fetched"]) == pending
    # Verify asked with HEAD, which never makes the proxy fetch: still nothing cached.
    assert proxied.verify().returncode == 0
    assert json.loads(proxied.verify().stdout)["not_yet_fetched"] == report["not_yet_fetched"]

    # Once a client has fetched the wheel, it is a signed target and is verified.
    before = _catch_ups(down)
    fetched = httpx.get(httpx.URL(page.url).join(files[wheel]), timeout=60)
    assert fetched.status_code == 200
    eventually(lambda: _catch_ups(down) > before, "the proxy's catch-up")
    second = proxied.verify()
    assert second.returncode == 0, second.stdout + second.stderr
    after = json.loads(second.stdout)
    assert after["faults"] == []
    assert sorted(p.rsplit("/", 1)[1] for p in after["not_yet_fetched"]) == [
        p for p in pending if p != wheel
    ]
    assert after["targets_checked"] > report["targets_checked"]

    # The plain summary says so in words, with exit 0.
    plain = subprocess.run(
        [sys.executable, "-m", "tilsit", "verify", down, "--index", "px", "--root",
         str(proxied.root), "--fresh"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "NOT YET FETCHED: 2 file(s)" in plain.stdout
    assert plain.stdout.splitlines()[-1].startswith("OK: ")
