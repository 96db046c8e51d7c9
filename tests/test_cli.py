"""The command line, run in-process with click's runner against a real data directory."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.builders import make_sdist, make_wheel
from tests.conftest import AppClient, settings_env
from tests.uploads import upload
from tilsit.cli import main
from tilsit.config import SETTINGS, Settings
from tilsit.instance import Instance
from tilsit.trust.layout import is_hashed

Run = Callable[..., Result]


@pytest.fixture
def run(settings: Settings, instance: Instance) -> Run:
    """Run a command on the test's instance (made first: only serve and init make one)."""

    def invoke(*args: str, code: int = 0) -> Result:
        env = settings_env(settings)
        result = CliRunner().invoke(main, [*args, "--data", str(settings.data)], env=env)
        assert result.exit_code == code, result.output
        return result

    return invoke


def test_user_and_token(run: Run) -> None:
    assert "created user 'alice'" in run("user", "create", "alice").output
    secret = run("token", "create", "--user", "alice", "--expires", "30d").output.strip()
    assert re.fullmatch(r"tilsit-[A-Za-z0-9_-]{43}", secret)
    assert "already exists" in run("user", "create", "alice", code=1).output
    assert "no user" in run("token", "create", "--user", "nobody", code=1).output
    assert run("token", "create", "--user", "alice", "--expires", "soon", code=2)


def test_index_create_and_list(run: Run, client: AppClient) -> None:
    run("index", "create", "team")
    listing = run("index", "list").output
    assert re.search(r"^main\thosted\tpublic\tserial \d+ \(default\)$", listing, re.M)
    assert re.search(r"^team\thosted\tpublic\tserial \d+$", listing, re.M)
    assert client.get("/team/simple/").status_code == 200
    assert "already exists" in run("index", "create", "team", code=1).output
    assert "Invalid index name" in run("index", "create", "packages", code=1).output


def test_yank_and_unyank(run: Run, client: AppClient, token: str) -> None:
    upload(client, make_wheel("foo", "1.0"), token)
    run("yank", "foo", "1.0", "--reason", "broken <build>")
    doc = client.get("/simple/foo/?format=json").json()
    assert doc["files"][0]["yanked"] == "broken <build>"
    assert 'data-yanked="broken &lt;build&gt;"' in client.get("/simple/foo/").text
    assert client.get("/pypi/foo/json").json()["urls"][0]["yanked"] is True
    run("unyank", "foo", "1.0")
    assert client.get("/simple/foo/?format=json").json()["files"][0]["yanked"] is False
    assert "data-yanked" not in client.get("/simple/foo/").text
    assert "no release" in run("yank", "foo", "9.9", code=1).output


def test_delete_file_release_project(run: Run, client: AppClient, token: str) -> None:
    wheel, sdist = make_wheel("foo", "1.0"), make_sdist("foo", "1.0")
    upload(client, wheel, token)
    upload(client, sdist, token)
    upload(client, make_wheel("foo", "2.0"), token)
    url = client.get("/simple/foo/?format=json").json()["files"][0]["url"]
    run("delete", "file", wheel.filename)
    files = [f["filename"] for f in client.get("/simple/foo/?format=json").json()["files"]]
    assert wheel.filename not in files and sdist.filename in files
    assert client.get(url).status_code == 404
    run("delete", "release", "foo", "2.0")
    doc = client.get("/simple/foo/?format=json").json()
    assert doc["versions"] == ["1.0"]
    assert client.get("/pypi/foo/2.0/json").status_code == 404
    run("delete", "project", "foo")
    assert client.get("/simple/foo/").status_code == 404
    assert client.get("/pypi/foo/json").status_code == 404
    assert "foo" not in client.get("/simple/").text
    assert "delete release takes 2" in run("delete", "release", "foo", code=2).output


def test_rebuild_reproduces_the_tree(
    run: Run, client: AppClient, token: str, instance: Instance
) -> None:
    for version in ("1.0", "1.1"):
        upload(client, make_wheel("foo", version, requires_python=">=3.8"), token)
    upload(client, make_sdist("bar", "0.1"), token)
    run("yank", "foo", "1.1")
    tree = instance.settings.tree_dir

    def contents() -> dict[str, bytes]:
        # TUF metadata is re-signed (new versions and expiries) and superseded hashed
        # pages are not re-made: tests/trust covers those.
        return {
            str(p.relative_to(tree)): p.read_bytes()
            for p in tree.rglob("*")
            if p.is_file() and p.parent.name != "tuf" and not is_hashed(p.name)
        }

    before = contents()
    shutil.rmtree(tree)
    os.mkdir(tree)
    assert "rebuilt the tree" in run("rebuild").output
    assert contents() == before


def test_fsck_reaps_orphans_and_reports_missing(
    run: Run, client: AppClient, token: str, instance: Instance
) -> None:
    wheel = make_wheel("foo", "1.0")
    upload(client, wheel, token)
    orphan = instance.blobs.put_bytes(b"left behind by a crash between blob and row")
    assert f"orphan blob {orphan} is younger" in run("fsck").output
    assert instance.blobs.exists(orphan)
    assert "would reap" in run("fsck", "--grace", "0", "--dry-run").output
    assert instance.blobs.exists(orphan)
    result = run("fsck", "--grace", "0", "--verify")
    assert f"reaped orphan blob {orphan}" in result.output
    assert not instance.blobs.exists(orphan)
    assert instance.blobs.exists(wheel.sha256)
    path = instance.blobs.path(wheel.sha256)
    path.chmod(0o644)
    path.write_bytes(b"bit rot")
    assert f"CORRUPT blob {wheel.sha256}" in run("fsck", "--verify", code=1).output
    path.unlink()
    assert f"MISSING blob {wheel.sha256}" in run("fsck", code=1).output


def test_settings_are_all_documented(run: Run) -> None:
    output = CliRunner().invoke(main, ["settings"]).output
    for setting in SETTINGS:
        assert f"TILSIT_{setting.name.upper()}" in output
        assert (setting.help and setting.help in output.replace("\n    ", " ")) or setting.help[
            :30
        ] in output


def test_nginx_config(run: Run, settings: Settings, tmp_path: Path) -> None:
    served = run("nginx-config", "--listen", "127.0.0.1:8081").output
    assert "server {" in served
    assert str(settings.tree_dir.resolve()) in served
    assert "proxy_pass http://127.0.0.1:8080" in served
    standalone = run("nginx-config", "--no-upstream", "--standalone", str(tmp_path / "run")).output
    assert "pid " in standalone and "proxy_pass" not in standalone
    assert "upstream must be" in run("nginx-config", "--upstream", "bad upstream", code=2).output
