"""Operator mistakes, through the real ``tilsit`` command: one line naming the thing, exit 1.

Each case runs ``python -m tilsit`` as a subprocess, as an operator would, and
checks that the mistake is named on one line of stderr with its fix, that no
traceback is printed, and that nothing was made or changed. Unwritable
directories: the tests run as root here, and root passes every mode check, so
the command runs under ``setpriv`` with the capabilities that bypass modes
(dac_override, dac_read_search, fowner) removed from its bounding set; a
non-root run needs no help.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import postgres
from tests.conftest import BACKEND, need, settings_env
from tilsit.config import Settings
from tilsit.instance import Instance

NOBODY = 65534


def tilsit(
    settings: Settings,
    *args: str,
    cwd: Path | None = None,
    data: Path | None = None,
    env: dict[str, str] | None = None,
    no_override: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``tilsit ARGS --data DATA`` (the test's data directory unless given)."""
    command = [sys.executable, "-m", "tilsit", *args]
    if data is not None or cwd is None:
        command += ["--data", str(data if data is not None else settings.data)]
    if no_override and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        need(setpriv is not None, "setpriv (util-linux) drops root's override of file modes")
        assert setpriv is not None
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]
    full_env = {k: v for k, v in os.environ.items() if k not in {"TILSIT_DATA", "TILSIT_CONFIG"}}
    full_env.update({**settings_env(settings), **(env or {})})
    return subprocess.run(
        command, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120, check=False
    )


def serve() -> list[str]:
    """``serve`` on a free port: a check that lets it through would start a server."""
    return ["serve", "--port", str(postgres.free_port())]


def refused(result: subprocess.CompletedProcess[str], *named: str) -> str:
    """The one line a refusal prints; it names each of ``named``."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    [line] = lines
    assert line.startswith("error: "), line
    for part in named:
        assert part in line, (part, line)
    return line


def tree_of(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# One command of each group that opens the instance (each module of tilsit.cli that
# opens one: tokens, users, index, audit, publishers, trust, mirror, maintenance).
COMMANDS = [
    ("token", "list", "--user", "alice"),
    ("user", "create", "bob"),
    ("index", "list"),
    ("index", "permissions", "main"),
    ("audit", "export"),
    ("publisher", "list"),
    ("tuf", "refresh"),
    ("keys", "show"),
    ("keys", "rotate"),
    ("mirror", "status", "pypi"),
    ("fsck",),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_command_refuses_where_there_is_no_data_directory(
    settings: Settings, tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "typo"
    before = tree_of(tmp_path)
    line = refused(tilsit(settings, *args, data=missing), str(missing), "--data", "tilsit init")
    assert "TILSIT_DATA" in line
    assert tree_of(tmp_path) == before  # nothing made


def test_the_default_data_directory_is_named_and_not_made(
    settings: Settings, tmp_path: Path
) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    refused(
        tilsit(settings, "token", "list", "--user", "alice", cwd=work), str(work / "tilsit-data")
    )
    assert list(work.iterdir()) == []


def test_an_empty_directory_is_not_a_data_directory(settings: Settings, tmp_path: Path) -> None:
    """SQLite: no tilsit.db in it; PostgreSQL: the database has no tilsit schema."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = tilsit(settings, "user", "create", "bob", data=empty)
    refused(result, "database", "tilsit init")
    assert list(empty.iterdir()) == []


def test_init_makes_an_instance_that_the_commands_then_use(
    settings: Settings, tmp_path: Path
) -> None:
    made = tilsit(settings, "init")
    assert made.returncode == 0, made.stderr
    assert f"data directory {settings.data.resolve()}: made" in made.stdout
    assert "TUF keys in" in made.stdout and "made" in made.stdout
    assert (settings.data / "keys").is_dir() and (settings.data / "tree").is_dir()
    created = tilsit(settings, "user", "create", "bob")
    assert created.returncode == 0, created.stderr
    listed = tilsit(settings, "token", "list", "--user", "bob")
    assert listed.returncode == 0, listed.stderr
    again = tilsit(settings, "init")
    assert again.returncode == 0, again.stderr
    assert "kept (it existed)" in again.stdout and "kept (they existed)" in again.stdout
    # The instance is the same one: bob is still there.
    assert "already exists" in tilsit(settings, "user", "create", "bob").stderr


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('port = 8080\nhost = "127.0.0.1\n', ["line 2, column", "not valid TOML"]),
        ("[tilsit\nport = 1\n", ["line 1, column", "not valid TOML"]),
        ("nonsense = 1\n", ["unknown setting 'nonsense'", "tilsit settings"]),
        ('port = "eighty"\n', ["port must be int"]),
        ("port = 8080.5\n", ["port must be int"]),
        ('access_log = "maybe"\n', ["access_log must be true or false"]),
        ('smtp_security = "ssl"\n', ["smtp_security must be one of none, starttls, tls"]),
    ],
)
def test_a_bad_settings_file_is_named_with_its_problem(
    settings: Settings, instance: Instance, tmp_path: Path, text: str, named: list[str]
) -> None:
    config = tmp_path / "tilsit.toml"
    config.write_text(text)
    for args in (("index", "list"), tuple(serve())):
        refused(tilsit(settings, *args, "--config", str(config)), str(config), *named)


def test_a_missing_settings_file_from_the_environment_is_named(
    settings: Settings, instance: Instance, tmp_path: Path
) -> None:
    gone = tmp_path / "gone.toml"
    result = tilsit(settings, "index", "list", env={"TILSIT_CONFIG": str(gone)})
    refused(result, str(gone), "TILSIT_CONFIG")
    for args in (("index", "list"), tuple(serve())):
        refused(tilsit(settings, *args, "--config", str(gone)), str(gone), "--config")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_names_a_port_in_use_before_the_banner(
    settings: Settings, taken_port: int, tmp_path: Path
) -> None:
    result = tilsit(settings, "serve", "--port", str(taken_port))
    refused(result, f"port {taken_port}", "already in use", "--port")
    assert result.stdout == ""  # no banner that points at someone else's server
    assert not settings.data.exists()  # and nothing made


def test_serve_names_a_missing_tls_file(settings: Settings, tmp_path: Path) -> None:
    cert, key = tmp_path / "missing.pem", tmp_path / "key.pem"
    key.write_text("not a key\n")
    result = tilsit(settings, "serve", "--tls-cert", str(cert), "--tls-key", str(key))
    refused(result, f"tls_cert file {cert}", "does not exist")
    cert.write_text("not a certificate\n")
    result = tilsit(settings, "serve", "--tls-cert", str(cert), "--tls-key", str(key))
    refused(result, str(cert), str(key), "matching pair")
    refused(tilsit(settings, "serve", "--tls-cert", str(cert)), "tls_key", "go together")
    assert not settings.data.exists()


def test_serve_refuses_a_tree_it_cannot_write(settings: Settings, instance: Instance) -> None:
    """A page directory another user made: uploads would fail after their commit."""
    simple = settings.tree_dir / "main" / "simple"
    simple.chmod(0o555)
    try:
        result = tilsit(settings, *serve(), no_override=True)
    finally:
        simple.chmod(0o755)
    line = refused(result, str(simple), "not writable", "belongs to", "chown")
    assert result.stdout == ""
    assert "run tilsit as the owner" in line


def test_serve_refuses_an_unwritable_data_directory(settings: Settings, instance: Instance) -> None:
    settings.data.chmod(0o555)
    try:
        result = tilsit(settings, *serve(), no_override=True)
    finally:
        settings.data.chmod(0o755)
    refused(result, str(settings.data), "not writable")


def test_a_command_names_a_lock_file_it_cannot_open(settings: Settings, instance: Instance) -> None:
    lock = settings.data / "render.lock"
    lock.touch()
    lock.chmod(0o444)
    result = tilsit(settings, "rebuild", no_override=True)
    refused(result, str(lock), "belongs to")
    refused(tilsit(settings, *serve(), no_override=True), str(lock), "not writable")


def test_a_command_whose_render_fails_says_so(settings: Settings, instance: Instance) -> None:
    """A page the command could not write is named, not silent (and stays in /_/health)."""
    simple = settings.tree_dir / "main" / "simple"
    simple.chmod(0o555)
    try:
        made = tilsit(settings, "rebuild", no_override=True)
        listed = tilsit(settings, "index", "list")
    finally:
        simple.chmod(0o755)
    assert made.returncode == 0, made.stderr
    assert "rebuilt the tree" in made.stdout
    assert "Traceback" not in made.stderr
    lines = made.stderr.splitlines()
    # The renderer's own log line (the failure), then the summary with what to do.
    assert lines[0].startswith("error: render failed for index 'main'"), lines
    assert lines[-1].startswith("warning: main could not be rendered (PermissionError"), lines
    assert "/_/health" in lines[-1]
    # The next command (with a writable tree) retries the failed render as it opens.
    assert listed.returncode == 0 and listed.stderr == ""
    assert instance.renderer.render_failures() == []


def test_an_unsafe_key_file_is_named(settings: Settings, instance: Instance) -> None:
    key = settings.data / "keys" / "online.pem"
    key.chmod(0o644)
    before = key.read_bytes()
    for args in (("index", "list"), tuple(serve())):
        refused(tilsit(settings, *args), str(key), "chmod 600")
    assert stat.S_IMODE(key.stat().st_mode) == 0o644 and key.read_bytes() == before


def test_a_data_directory_of_another_user_is_refused(
    settings: Settings, instance: Instance
) -> None:
    """Files a command made as root would be root's, and the server could not write them."""
    need(os.geteuid() == 0, "only root can give the data directory to another user")
    os.chown(settings.data, NOBODY, -1)
    try:
        for args in (("token", "list", "--user", "alice"), tuple(serve())):
            refused(tilsit(settings, *args), str(settings.data), "belongs to", "uid 65534")
    finally:
        os.chown(settings.data, 0, -1)


def test_a_secret_file_of_another_user_is_named(settings: Settings, instance: Instance) -> None:
    need(os.geteuid() == 0, "only root can give a file to another user")
    if BACKEND != "sqlite" or instance.db.path is None:
        pytest.skip("only SQLite keeps the database in the data directory")
    database = instance.db.path
    database.chmod(0o644)
    os.chown(database, NOBODY, -1)
    try:
        refused(tilsit(settings, *serve()), str(database), "chmod go-rwx")
    finally:
        os.chown(database, 0, -1)
        database.chmod(0o600)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgres://tilsit:hunter2@127.0.0.1:{port}/db", "is not a database URL tilsit can use"),
        ("postgresql+psycopg://tilsit:hunter2@127.0.0.1:{port}/db", "cannot open the database"),
    ],
)
def test_a_database_url_that_does_not_work_is_named_without_its_password(
    settings: Settings, instance: Instance, tmp_path: Path, url: str, named: str
) -> None:
    wrong = {"TILSIT_DATABASE_URL": url.format(port=postgres.free_port())}
    fresh = tmp_path / "fresh"
    for args, data in ((("index", "list"), settings.data), (tuple(serve()), fresh)):
        line = refused(tilsit(settings, *args, data=data, env=wrong), named, "database")
        assert "hunter2" not in line and "***" in line
    assert not fresh.exists()  # serve made nothing before the database answered


def test_a_data_directory_on_a_read_only_filesystem_is_named(
    settings: Settings, instance: Instance
) -> None:
    data = settings.data
    mounted = subprocess.run(["mount", "--bind", str(data), str(data)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a bind mount needs root: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(data)], check=True)
        served = tilsit(settings, *serve())
        listed = tilsit(settings, "index", "list")
    finally:
        subprocess.run(["umount", str(data)], check=True)
    refused(served, str(data), "read-only filesystem", "mount it read-write")
    assert served.stdout == ""
    refused(listed, str(data), "read-only filesystem")


def test_a_tree_on_another_mount_than_tmp_is_named(settings: Settings, instance: Instance) -> None:
    """Every page is renamed from data/tmp into the tree: across mounts that fails (EXDEV)."""
    tree = settings.tree_dir
    mounted = subprocess.run(["mount", "--bind", str(tree), str(tree)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a bind mount needs root: {mounted.stderr.decode().strip()}")
    try:
        served = tilsit(settings, *serve())
        rebuilt = tilsit(settings, "rebuild")
    finally:
        subprocess.run(["umount", str(tree)], check=True)
    refused(served, str(tree), "one filesystem")
    assert served.stdout == ""
    # rebuild logs each page it could not write, then stops at the tree's serial marker.
    assert rebuilt.returncode == 1 and "Traceback" not in rebuilt.stderr
    last = rebuilt.stderr.splitlines()[-1]
    assert last.startswith(f"error: {tree / '.serial'} is on another filesystem"), last
