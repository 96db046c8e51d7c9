"""A render costs what the journal changed: one version's change rewrites that version only.

Each test drives real uploads through the app and domain changes through
``tilsit.index.manage``, then compares the tree the scoped renders left with the
tree a full ``rebuild`` makes from the same database: they must be the same,
page for page and TUF target for TUF target (a release's legacy JSON shows the
serial of the release's own last change, which the database holds).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.builders import make_sdist, make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.index.manage import delete_file, delete_release, get_index, set_yanked
from tilsit.instance import Instance
from tilsit.trust.layout import is_hashed
from tilsit.trust.repository import IndexRepository

PROJECT = "scoped"


def _tree(instance: Instance) -> dict[str, bytes]:
    """Every page and file of the tree (TUF metadata and its hashed links apart)."""
    root = instance.settings.tree_dir
    found: dict[str, bytes] = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "tuf"]
        for name in files:
            path = Path(directory, name)
            relative = str(path.relative_to(root))
            if relative == ".serial" or "/tuf/" in f"/{relative}":
                continue
            found[relative] = path.read_bytes()
    return found


def _inodes(instance: Instance) -> dict[str, int]:
    root = instance.settings.tree_dir
    return {
        str(Path(d, n).relative_to(root)): os.stat(Path(d, n)).st_ino
        for d, _dirs, files in os.walk(root)
        for n in files
        if "/tuf/" not in f"/{Path(d, n).relative_to(root)}"
    }


def _targets(instance: Instance) -> dict[str, str]:
    signing = instance.signing
    repo = IndexRepository(instance.tree, "main", signing.keys, signing.settings)
    return {path: t.hashes["sha256"] for path, t in repo.targets().items()}


def _change(instance: Instance, action: str, version: str, filename: str = "") -> None:
    with instance.db.write() as session:
        index = get_index(session, "main")
        if action == "yank":
            set_yanked(session, index, PROJECT, version, yanked=True, reason="broken")
        elif action == "remove release":
            delete_release(session, index, PROJECT, version)
        else:
            delete_file(session, index, filename)
    instance.renderer.catch_up()


def _rewritten(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {path for path, inode in after.items() if before.get(path) != inode}


def test_a_new_version_rewrites_only_its_own_pages(
    client: AppClient, token: str, instance: Instance
) -> None:
    for n in range(1, 13):
        response = upload(client, make_wheel(PROJECT, f"{n}.0"), token)
        assert response.status_code == 200, response.text
    before = _inodes(instance)
    response = upload(client, make_wheel(PROJECT, "13.0"), token)
    assert response.status_code == 200, response.text
    changed = _rewritten(before, _inodes(instance))
    legacy = f"main/pypi/{PROJECT}"
    # The project's pages, the index's list, the new release's JSON and its file
    # (and .metadata): nothing of the twelve releases before it.
    assert {f"{legacy}/json", f"{legacy}/13.0/json"} <= changed
    assert not any(path.startswith(f"{legacy}/{n}.0/") for n in range(1, 13) for path in changed)
    plain = {path for path in changed if not is_hashed(Path(path).name)}
    assert {path for path in plain if "/packages/" not in f"/{path}"} == {
        ".serial",
        "main/simple/index.html",
        "main/simple/index.v1.json",
        f"main/simple/{PROJECT}/index.html",
        f"main/simple/{PROJECT}/index.v1.json",
        f"{legacy}/json",
        f"{legacy}/13.0/json",
    }
    assert len(plain) <= 9, sorted(plain)
    # Each new page or file has its one consistent-snapshot link: no more.
    assert len(changed - plain) <= len(plain), sorted(changed)


def test_scoped_renders_leave_the_tree_a_rebuild_makes(
    client: AppClient, token: str, instance: Instance
) -> None:
    for version in ("1.0", "2.0", "3.0"):
        assert upload(client, make_wheel(PROJECT, version), token).status_code == 200
        # 3.0.0 is 3.0: its sdist joins release 3.0, which the render must find by
        # the version as stored, not as this upload spells it.
        spelled = "3.0.0" if version == "3.0" else version
        assert upload(client, make_sdist(PROJECT, spelled), token).status_code == 200
    release = json.loads(
        (instance.settings.tree_dir / f"main/pypi/{PROJECT}/3.0/json").read_bytes()
    )
    assert len(release["urls"]) == 2
    assert upload(client, make_wheel("other", "1.0"), token).status_code == 200
    before = _inodes(instance)
    _change(instance, "yank", "2.0")
    changed = _rewritten(before, _inodes(instance))
    assert f"main/pypi/{PROJECT}/2.0/json" in changed
    assert not {f"main/pypi/{PROJECT}/1.0/json", f"main/pypi/{PROJECT}/3.0/json"} & changed
    assert json.loads((instance.settings.tree_dir / "main/pypi/scoped/2.0/json").read_bytes())[
        "info"
    ]["yanked"]
    _change(instance, "remove file", "1.0", f"{PROJECT}-1.0.tar.gz")
    _change(instance, "remove release", "3.0")
    assert not (instance.settings.tree_dir / f"main/pypi/{PROJECT}/3.0").exists()
    scoped_tree, scoped_targets = _tree(instance), _targets(instance)
    assert not any(name.endswith(f"{PROJECT}-3.0-py3-none-any.whl") for name in scoped_targets)
    # Gone from its plain name; its consistent-snapshot link waits for the TUF sweep.
    assert not any(
        name.endswith(f"/{PROJECT}-1.0.tar.gz") and not is_hashed(Path(name).name)
        for name in scoped_tree
    )

    instance.renderer.rebuild()
    assert _tree(instance) == scoped_tree
    assert _targets(instance) == scoped_targets
