"""Who reads a virtual index: its own read permission, through tilsit and through nginx.

A private hosted index ``sec`` is a member of the private virtual index ``priv``.
A user granted read on ``priv`` alone gets ``sec``'s pages and files through it;
a user granted read on ``sec`` alone gets nothing of ``priv``; anonymous gets 401.
The same holds through nginx in front of the tree, where ``priv`` (no proxy
member) is served statically after ``auth_request``.
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

from tests.builders import Dist, make_wheel
from tests.conftest import LiveServer, create_database, start_server, stop, stop_process
from tests.readpath.conftest import need_nginx, start_nginx
from tests.uploads import upload
from tilsit.config import load_settings
from tilsit.store.tree import file_path

JSON = "application/vnd.pypi.simple.v1+json"


@dataclass
class Stack:
    live: LiveServer
    nginx: str | None
    wheel: Dist
    virtual_reader: str
    member_reader: str
    limited: str  # vera's token for project inner-secret only
    other: Dist
    public: Dist  # in the public hosted index pubh, under the public virtual index open


@pytest.fixture(scope="module", params=["tilsit", pytest.param("nginx", marks=pytest.mark.nginx)])
def stack(
    request: pytest.FixtureRequest,
    postgres_base: str | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    if request.param == "nginx":
        need_nginx()
    root = tmp_path_factory.mktemp("virtual-private")
    settings = load_settings(
        overrides={"data": root / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    live = start_server(settings, root / "tilsit.log")
    process: subprocess.Popen[bytes] | None = None
    try:
        live.cli("index", "create", "sec", "--private")
        alice = live.token("alice")
        live.cli("index", "grant", "sec", "alice", "create")
        wheel = make_wheel("inner-secret", "1.0")
        other = make_wheel("other-secret", "1.0")
        with httpx.Client(base_url=live.url, timeout=60) as client:
            for dist in (wheel, other):
                response = upload(client, dist, alice, "/sec/legacy/")
                assert response.status_code == 200, response.text
        # A private member in a public virtual index is refused without the operator's leave.
        refused = live.cli("index", "create", "leaky", "--virtual", "--members", "sec", check=False)
        assert refused.returncode != 0 and "'sec' is private" in refused.stderr, refused.stderr
        live.cli("index", "create", "priv", "--virtual", "--members", "sec", "--private")
        live.cli("index", "reserve", "sec", "secret-plan")
        live.cli("index", "create", "pubh")
        public = make_wheel("open-tool", "1.0")
        with httpx.Client(base_url=live.url, timeout=60) as client:
            response = upload(client, public, alice, "/pubh/legacy/")
            assert response.status_code == 200, response.text
        live.cli("index", "create", "open", "--virtual", "--members", "pubh")
        virtual_reader = live.token("vera")
        member_reader = live.token("max")
        live.cli("index", "grant", "priv", "vera", "read")
        limited = live.token("vera", projects=["inner-secret"], index="priv")
        live.cli("index", "grant", "sec", "max", "read")
        url = None
        if request.param == "nginx":
            process, url = start_nginx(settings.tree_dir, live.url, root / "nginx")
        yield Stack(live, url, wheel, virtual_reader, member_reader, limited, other, public)
    finally:
        if process is not None:
            stop_process(process)
        stop(live)


def _get(stack: Stack, path: str, token: str | None) -> httpx.Response:
    auth = ("__token__", token) if token else None
    base = stack.nginx or stack.live.url
    return httpx.get(f"{base}{path}", auth=auth, headers={"Accept": JSON}, timeout=30)


def test_a_reader_of_the_virtual_index_reads_its_private_members_files(stack: Stack) -> None:
    page = _get(stack, "/priv/simple/inner-secret/", stack.virtual_reader)
    assert page.status_code == 200, page.text
    [entry] = page.json()["files"]
    assert "/priv/packages/" in entry["url"]
    file = _get(
        stack, f"/priv/{file_path(stack.wheel.sha256, stack.wheel.filename)}", stack.virtual_reader
    )
    assert file.status_code == 200
    assert file.content == stack.wheel.data


@pytest.mark.parametrize("who", ["anonymous", "member reader"])
def test_no_one_else_reads_it(stack: Stack, who: str) -> None:
    token = None if who == "anonymous" else stack.member_reader
    for path in (
        "/priv/simple/",
        "/priv/simple/inner-secret/",
        f"/priv/{file_path(stack.wheel.sha256, stack.wheel.filename)}",
    ):
        response = _get(stack, path, token)
        assert response.status_code == (401 if token is None else 403), (path, response.text)
    assert stack.wheel.data not in _get(stack, "/priv/simple/inner-secret/", token).content


def test_a_token_limited_to_a_project_reads_that_projects_files_only(stack: Stack) -> None:
    own = f"/priv/{file_path(stack.wheel.sha256, stack.wheel.filename)}"
    other = f"/priv/{file_path(stack.other.sha256, stack.other.filename)}"
    response = _get(stack, own, stack.limited)
    assert response.status_code == 200, response.text
    assert _get(stack, other, stack.limited).status_code == 403
    assert _get(stack, other, stack.virtual_reader).status_code == 200


def test_the_virtual_index_verifies_against_its_root(stack: Stack, tmp_path: Path) -> None:
    """Its TUF metadata signs exactly what its pages list, files under its own root."""
    root = stack.live.settings.tree_dir / "priv" / "tuf" / "1.root.json"
    base = stack.nginx or stack.live.url
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tilsit",
            "verify",
            base,
            "--index",
            "priv",
            "--root",
            str(root),
            "--fresh",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "TILSIT_TOKEN": stack.virtual_reader},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["faults"] == [], report


def test_a_missing_page_says_why_through_tilsit_and_nginx(stack: Stack) -> None:
    """The pages are static; only a 404 asks tilsit, whose body gives the reason."""
    reserved = _get(stack, "/priv/simple/secret-plan/", stack.virtual_reader)
    assert reserved.status_code == 404
    assert "reserved by index 'sec'" in reserved.text, reserved.text
    unknown = _get(stack, "/priv/simple/nothing-here/", stack.virtual_reader)
    assert unknown.status_code == 404
    assert "no project 'nothing-here'" in unknown.text, unknown.text
    # A stranger learns nothing: the gate answers first.
    assert _get(stack, "/priv/simple/secret-plan/", None).status_code == 401


def test_a_public_virtual_indexs_files_may_be_cached_by_anyone(stack: Stack) -> None:
    path = f"/open/{file_path(stack.public.sha256, stack.public.filename)}"
    response = _get(stack, path, None)
    assert response.status_code == 200
    assert response.content == stack.public.data
    assert "public" in response.headers["cache-control"], response.headers
    private = _get(
        stack, f"/priv/{file_path(stack.wheel.sha256, stack.wheel.filename)}", stack.virtual_reader
    )
    if stack.nginx is not None:  # tilsit marks a private index's answers in the gate's wrapper
        assert "private" in private.headers["cache-control"], private.headers
