"""A fresh client holding only root.json verifies a live tilsit index and installs from it.

``tilsit verify`` over HTTP and over the tree directory, by project and by sample,
and python-tuf's ngclient driven directly (not through tilsit's verify); pip then
installs the file ngclient verified, and from the same server by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tuf.ngclient import Updater

from tests.builders import make_wheel
from tests.conftest import LiveServer, start_server, stop
from tests.installs import pip_install
from tests.trust.signed import INDEX, Signed, faults, run_verify, signed_tree
from tilsit.config import Settings
from tilsit.store.tree import file_path


@pytest.fixture
def signed(settings: Settings, tmp_path: Path) -> Iterator[Signed]:
    server: LiveServer = start_server(settings, tmp_path / "server.log")
    try:
        yield signed_tree(server)
    finally:
        stop(server)


def test_verify_live_server_then_pip_installs(signed: Signed, tmp_path: Path) -> None:
    result = run_verify(
        signed.server.url, "--index", INDEX, "--root", str(signed.root), "--fresh", "--json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["faults"] == []
    # Every dist, every wheel's .metadata and both pages of each project and
    # the project list were fetched under their hashed names.
    wheels = [d for d in signed.dists if d.filename.endswith(".whl")]
    assert report["targets_checked"] == len(signed.dists) + len(wheels) + 2 * 2 + 2
    assert report["targets_listed"] == report["targets_checked"]
    # ... and the plain names pip fetches held the same bytes.
    assert report["plain_checked"] == report["targets_checked"]
    assert report["bins"] == 1024
    installed = pip_install(
        "--no-deps",
        "--index-url",
        f"{signed.server.url}/{INDEX}/simple/",
        "foo==1.0",
        target=tmp_path / "site",
    )
    assert installed.returncode == 0, installed.stderr
    assert (tmp_path / "site" / "foo").is_dir() or any(
        (tmp_path / "site").glob("foo-1.0.dist-info")
    )


def test_verify_tree_directory_and_subsets(signed: Signed) -> None:
    root = str(signed.root)
    whole = run_verify(str(signed.tree), "--root", root, "--fresh")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert whole.stdout.startswith("OK: ") and f"(index {INDEX})" in whole.stdout
    one = run_verify(
        str(signed.tree), "--index", INDEX, "--root", root, "--fresh", "--project", "foo", "--json"
    )
    assert one.returncode == 0, one.stdout
    # foo's two pages, its wheel, sdist and .metadata, and the project list.
    assert json.loads(one.stdout)["targets_checked"] == 2 + 3 + 2
    sample = run_verify(str(signed.tree), "--root", root, "--fresh", "--sample", "1", "--json")
    assert sample.returncode == 0, sample.stdout
    assert (
        2 + 2
        < json.loads(sample.stdout)["targets_checked"]
        < json.loads(run_verify(str(signed.tree), "--root", root, "--fresh", "--json").stdout)[
            "targets_checked"
        ]
    )
    # A project with no signed page is named as unlisted: exit 1.
    absent = run_verify(str(signed.tree), "--root", root, "--fresh", "--project", "nothere")
    assert absent.returncode == 1 and faults(absent) == ["unlisted path"], absent.stdout


def test_verify_refuses_bad_input(signed: Signed, tmp_path: Path) -> None:
    nowhere = run_verify(str(tmp_path / "nowhere"), "--root", str(signed.root))
    assert nowhere.returncode == 2 and "neither an http(s) URL nor a directory" in nowhere.stderr
    both = run_verify(
        str(signed.tree), "--root", str(signed.root), "--project", "foo", "--sample", "1"
    )
    assert both.returncode == 2 and "exclude each other" in both.stderr
    # A root that does not sign this index: nothing verifies.
    other = tmp_path / "root.json"
    other.write_bytes(signed.root.read_bytes().replace(b'"version":1', b'"version":7', 1))
    forged = run_verify(str(signed.tree), "--root", str(other), "--fresh")
    assert forged.returncode == 2, forged.stdout


def test_ngclient_directly_then_pip_installs_what_it_verified(
    signed: Signed, tmp_path: Path
) -> None:
    """python-tuf's ngclient, without tilsit's verify: only root.json is trusted."""
    wheel = next(
        d for d in signed.dists if d.filename.startswith("foo-") and d.filename.endswith(".whl")
    )
    (tmp_path / "meta").mkdir()
    (tmp_path / "dl").mkdir()
    updater = Updater(
        metadata_dir=str(tmp_path / "meta"),
        metadata_base_url=f"{signed.server.url}/{INDEX}/tuf/",
        target_dir=str(tmp_path / "dl"),
        target_base_url=f"{signed.server.url}/{INDEX}/",
        bootstrap=signed.root.read_bytes(),
    )
    updater.refresh()
    target = file_path(wheel.sha256, wheel.filename)
    info = updater.get_targetinfo(target)
    assert info is not None and info.hashes == {"sha256": wheel.sha256}
    assert info.length == len(wheel.data)
    assert updater.get_targetinfo(target + ".metadata") is not None
    page = updater.get_targetinfo("simple/foo/index.html")
    assert page is not None
    html = Path(updater.download_target(page)).read_text()
    assert wheel.filename in html
    assert updater.get_targetinfo("simple/nothere/index.html") is None
    downloaded = tmp_path / wheel.filename
    updater.download_target(info, str(downloaded))
    assert downloaded.read_bytes() == wheel.data
    installed = pip_install("--no-deps", str(downloaded), target=tmp_path / "site")
    assert installed.returncode == 0, installed.stderr


def test_a_new_upload_is_verified_by_a_returning_client(signed: Signed, tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = (
        signed.server.url,
        "--index",
        INDEX,
        "--root",
        str(signed.root),
        "--state",
        str(state),
        "--json",
    )
    first = run_verify(*args)
    assert first.returncode == 0, first.stdout
    signed.upload(make_wheel("foo", "1.1"))
    second = run_verify(*args)
    assert second.returncode == 0, second.stdout
    before, after = json.loads(first.stdout), json.loads(second.stdout)
    assert after["timestamp_version"] > before["timestamp_version"]
    assert after["targets_checked"] == before["targets_checked"] + 2  # the wheel and its .metadata
