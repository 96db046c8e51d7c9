"""A live server's start-up freshness pass does not make an upload wait for the whole
pass: the upload's signing round lands between two of its steps. Then, after many
rounds and a sweep bounded by count, `tilsit verify` still passes."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from tuf.api.metadata import Metadata, Snapshot, Targets, Timestamp

from tests.builders import make_wheel
from tests.conftest import run_cli, start_server, stop
from tests.trust.signed import faults, run_verify, wait_for
from tests.uploads import upload
from tilsit.config import Settings
from tilsit.instance import open_instance
from tilsit.trust.layout import file_target
from tilsit.trust.settings import utcnow

BITS = 11  # 2,048 bins: a pass of many steps


def _timestamp(tuf: Path) -> Metadata[Timestamp]:
    return Metadata[Timestamp].from_bytes((tuf / "timestamp.json").read_bytes())


def _bins(tuf: Path, version: int) -> dict[str, int]:
    raw = (tuf / f"{version}.snapshot.json").read_bytes()
    meta = Metadata[Snapshot].from_bytes(raw).signed.meta
    return {name: m.version for name, m in meta.items() if name != "targets.json"}


def test_an_upload_during_the_start_up_pass_waits_for_a_step_not_the_pass(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"TILSIT_TUF_BIN_BITS": str(BITS), "TILSIT_TUF_KEEP_VERSIONS": "100000"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = dataclasses.replace(settings, tuf_bin_bits=BITS, tuf_keep_versions=100000)
    tuf = settings.tree_dir / "main" / "tuf"
    # Every bin signed 13 hours ago, as after a server stopped overnight: all are due.
    instance = open_instance(settings)
    try:
        repo = instance.signing.repo("main")
        roles = list(instance.signing.keys.bins.get_roles())
        with instance.renderer.locked():
            repo.round(utcnow() - timedelta(hours=13), resign=roles)
    finally:
        instance.close()
    first = _timestamp(tuf).signed
    before = _bins(tuf, first.snapshot_meta.version)
    assert len(before) == 2**BITS

    server = start_server(settings, tmp_path / "server.log", env=env)
    try:
        # The pass has begun (its first step is signed) ...
        wait_for(lambda: _timestamp(tuf).signed.version > first.version, "the first step")
        wheel = make_wheel("during_pass", "1.0")
        with httpx.Client(base_url=server.url, timeout=120) as http:
            response = upload(http, wheel, server.token())
        assert response.status_code == 200, response.text
        # ... and the upload's round is signed between two of its steps: the snapshot
        # that first lists the wheel has bins the pass re-signed and bins it had not
        # reached yet. Holding the lock for the whole pass, it would have none left.
        path = file_target(wheel.sha256, wheel.filename)
        role = repo.keys.bins.get_role_for_target(path)
        version = first.snapshot_meta.version
        while True:
            version += 1
            listed = _bins(tuf, version)
            raw = (tuf / f"{listed[role + '.json']}.{role}.json").read_bytes()
            if path in Metadata[Targets].from_bytes(raw).signed.targets:
                break
        resigned = [n for n, v in listed.items() if v > before[n]]
        left = [n for n, v in listed.items() if v == before[n]]
        assert len(resigned) > 6, "the pass had not begun (6 bins: the upload's own)"
        assert len(left) > 6, "the upload waited for the whole pass"

        # The pass finishes; more rounds; then a sweep bounded by count, while serving.
        wait_for(
            lambda: all(
                v > before[n]
                for n, v in _bins(tuf, _timestamp(tuf).signed.snapshot_meta.version).items()
            ),
            "the pass to re-sign every bin",
            seconds=300,
        )
        with httpx.Client(base_url=server.url, timeout=120) as http:
            secret = server.token()
            for n in range(4):
                assert (
                    upload(http, make_wheel("during_pass", f"1.{n + 1}"), secret).status_code == 200
                )
        monkeypatch.setenv("TILSIT_TUF_KEEP_VERSIONS", "1")
        run_cli(settings, "tuf", "refresh")
        current = _timestamp(tuf).signed.snapshot_meta.version
        assert [
            v
            for v in (int(p.name.split(".")[0]) for p in tuf.glob("*.snapshot.json"))
            if v < current
        ] == [current - 1]
        result = run_verify(
            f"{server.url}/main/",
            "--root",
            str(tuf / "1.root.json"),
            "--state",
            str(tmp_path / "verify"),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert not faults(result)
    finally:
        stop(server)
