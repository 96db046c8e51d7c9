"""Several ``tilsit serve`` hosts on one PostgreSQL database, each with its own data directory.

Each host has its own tree, keys directory (the first host's keys copied, as an operator
copies them to a new host), temp directory and port; the blobs are in one shared
directory (``blob_path``), standing for a shared filesystem, or on an S3 run
(TILSIT_TEST_BLOBS=s3) under one prefix of the run's bucket. The hosts run on
127.0.0.1. On SQLite (one host by design) these tests skip: the PostgreSQL leg runs them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKEND, LiveServer, blob_overrides, start_server, stop
from tilsit.config import Settings, load_settings
from tilsit.trust.keys import keys_dir, trust_dir

__all__ = ["Cluster", "wait_for"]


def wait_for(check: Callable[[], bool], timeout: float, step: float = 0.02) -> float:
    """Seconds until ``check()`` held, or AssertionError after ``timeout`` seconds."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(step)


@dataclass
class Cluster:
    root: Path
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    hosts: list[LiveServer] = field(default_factory=list)
    # One store for every host: on an S3 run the same bucket and prefix (blob_overrides).
    s3: dict[str, str] = field(default_factory=blob_overrides)

    @property
    def blobs(self) -> Path:
        return self.root / "shared-blobs"

    def settings(self, name: str) -> Settings:
        return load_settings(
            overrides={
                "data": self.root / name / "data",
                "database_url": self.database_url,
                **(self.s3 or {"blob_path": str(self.blobs)}),
                "tuf_shared": True,
            },
            environ={},
        )

    def env(self) -> dict[str, str]:
        return {
            **({} if self.s3 else {"TILSIT_BLOB_PATH": str(self.blobs)}),
            "TILSIT_TUF_SHARED": "true",
            **self.extra_env,
        }

    def start(self, name: str) -> LiveServer:
        """Start host ``name``; a host after the first gets the first one's keys copied."""
        settings = self.settings(name)
        if self.hosts and not settings.data.exists():
            first = self.hosts[0].settings.data
            settings.data.mkdir(parents=True, mode=0o700)
            for directory in (keys_dir, trust_dir):
                shutil.copytree(directory(first), directory(settings.data))
        host = start_server(settings, self.root / f"{name}.log", env=self.env())
        self.hosts.append(host)
        return host

    def restart(self, host: LiveServer) -> LiveServer:
        name = host.settings.data.parent.name
        self.hosts.remove(host)
        settings = self.settings(name)
        again = start_server(settings, self.root / f"{name}-again.log", env=self.env())
        self.hosts.append(again)
        return again

    def stop_all(self) -> None:
        for host in self.hosts:
            if host.process.poll() is None:
                stop(host)


@pytest.fixture
def cluster(tmp_path: Path, database_url: str) -> Iterator[Cluster]:
    if BACKEND != "postgresql":
        pytest.skip("several hosts share a PostgreSQL database (TILSIT_TEST_DATABASE=postgresql)")
    group = Cluster(tmp_path, database_url)
    group.blobs.mkdir()
    try:
        yield group
    finally:
        group.stop_all()


def served(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
