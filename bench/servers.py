"""Servers for the bench scripts: ``tilsit serve`` and the CLI, started, awaited and stopped.

Every bench script that runs a server starts it the same way (a free port on
127.0.0.1, its output to a log file, ``/_/health`` polled until it answers, SIGTERM
then SIGKILL at the end), so the loop lives here once. Nothing here measures.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# The scripts import tests/ helpers (builders, postgres, s3) from the repo root.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
START_TIMEOUT = 60.0


class ServerFailed(SystemExit):
    """A server exited or did not answer in time; the message holds its log.

    A SystemExit, so a script that does not catch it stops with the log, as the
    scripts always did; one that can go on without the server (an optional leg)
    catches it.
    """

    def __init__(self, message: str, log: str) -> None:
        super().__init__(f"{message}:\n{log}")
        self.log = log


@dataclass(frozen=True)
class Served:
    url: str  # http://127.0.0.1:<port>, no trailing slash
    pid: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``url`` until it answers at all; fail with the log if the process exits first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed("server exited", log.read_text(errors="replace"))
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise ServerFailed(f"server did not answer within {START_TIMEOUT:.0f} s", log.read_text())


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def tilsit_cli(data: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``tilsit ARGS --data DATA``; its stdout, stripped (CalledProcessError on failure)."""
    result = subprocess.run(
        [sys.executable, "-m", "tilsit", *args, "--data", str(data)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env=None if env is None else dict(env),
    )
    return result.stdout.strip()


@contextmanager
def tilsit_serve(
    data: Path, log: Path, env: Mapping[str, str] | None = None, *args: str
) -> Iterator[Served]:
    """``tilsit serve --data DATA`` on a free port (``args`` added, e.g. ``--workers 2``).

    ``env`` is the whole environment of the server (None: this one's). Yields once
    ``/_/health`` answers; the server is stopped on the way out, whatever happened.
    """
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tilsit", "serve", "--data", str(data)),
                *("--port", str(port), *args),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/_/health", process, log)
        yield Served(url, process.pid)
    finally:
        stop(process)


def create_database(base: str, name: str) -> str:
    """Make database ``name`` on the cluster at ``base`` (tests/postgres.py); its URL."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return f"{base}/{name}"
