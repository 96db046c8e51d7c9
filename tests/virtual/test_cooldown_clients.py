"""A virtual index's cool-down agrees with the clients' own upload-time cut-offs.

The upstream (a plain tree, PEP 700 ``data-upload-time`` on its links) has
``cool-pkg`` 1.0, uploaded eight days ago, and 2.0, uploaded an hour ago. Through
the virtual index ``cool`` (member: a proxy of that upstream, policy: a 3-day
cool-down) plain pip, uv and pdm pick 1.0; through the proxy alone, pip's
``--uploaded-prior-to P3D``, uv's ``--exclude-newer "3 days"`` and pdm's
``lock --exclude-newer`` pick the same 1.0, and without a cut-off 2.0.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.builders import make_wheel
from tests.clients.tools import Sandbox, describe
from tests.conftest import LiveServer, create_database, start_server, stop
from tests.upstream.static import StaticServer, StaticTree
from tilsit.config import load_settings

pytestmark = pytest.mark.clients
_JSON = "application/vnd.pypi.simple.v1+json"

_DIRECT = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
# The maturing job ticks every second here (30 s by default).
_ENV = {**_DIRECT, "TILSIT_COOLDOWN_TICK": "1"}
SOON = 25  # seconds until soon-pkg 2.0 leaves the cool-down (a loaded machine is slow)


@dataclass
class Stack:
    live: LiveServer
    tree: StaticTree

    def url(self, index: str) -> str:
        return f"{self.live.url}/{index}/simple/"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def stack(postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("cooldown")
    now = datetime.now(UTC)
    tree = StaticTree(root / "upstream")
    tree.add(
        "cool-pkg",
        make_wheel("cool-pkg", "1.0"),
        attrs={"data-upload-time": _stamp(now - timedelta(days=8))},
    )
    tree.add(
        "cool-pkg",
        make_wheel("cool-pkg", "2.0"),
        attrs={"data-upload-time": _stamp(now - timedelta(hours=1))},
    )
    upstream = StaticServer(tree.root)
    settings = load_settings(
        overrides={"data": root / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    live = start_server(settings, root / "tilsit.log", env=_ENV)
    try:
        live.cli("index", "create", "pub", "--proxy", f"{upstream.url}/simple/")
        live.cli("index", "create", "cool", "--virtual", "--members", "pub")
        live.cli("policy", "set", "cool", "--cooldown", "3 days")
        live.cli("index", "create", "soon", "--virtual", "--members", "pub")
        live.cli("policy", "set", "soon", "--cooldown", "2 hours")
        yield Stack(live, tree)
    finally:
        stop(live)
        upstream.stop()


def _installed(sandbox: Sandbox, client: str, index_url: str, *extra: str) -> str:
    venv = sandbox.venv(f"venv{len(sandbox.runs)}")
    python = venv / "bin" / "python"
    if client == "pip":
        command: tuple[str | Path, ...] = ("--python", python, "install", *extra)
    else:
        command = ("pip", "install", "--python", python, *extra)
    result = sandbox.run(client, *command, "--index-url", index_url, "cool-pkg")
    assert result.returncode == 0, describe(result)
    check = sandbox.python(venv, "import importlib.metadata as m; print(m.version('cool-pkg'))")
    return check.stdout.strip()


@pytest.mark.parametrize("client", ["pip", "uv"])
def test_the_virtual_index_and_the_clients_cut_off_agree(
    stack: Stack, client: str, tmp_path: Path
) -> None:
    sandbox = Sandbox(tmp_path)
    assert _installed(sandbox, client, stack.url("cool")) == "1.0"
    cut_off = ("--uploaded-prior-to", "P3D") if client == "pip" else ("--exclude-newer", "3 days")
    assert _installed(sandbox, client, stack.url("pub"), *cut_off) == "1.0"
    assert _installed(sandbox, client, stack.url("pub")) == "2.0"


def test_a_file_leaves_the_cool_down_on_schedule_with_no_request(stack: Stack) -> None:
    """The first request brings soon-pkg in (1.0 shown, 2.0 cooling); then, with no request
    at all, the maturing job renders 2.0 into the tree when it comes of age."""
    import json
    import time

    import httpx

    now = datetime.now(UTC)
    old = {"data-upload-time": _stamp(now - timedelta(days=8))}
    stack.tree.add("soon-pkg", make_wheel("soon-pkg", "1.0"), attrs=old)
    ripe = now - timedelta(hours=2) + timedelta(seconds=SOON)
    stack.tree.add(
        "soon-pkg", make_wheel("soon-pkg", "2.0"), attrs={"data-upload-time": _stamp(ripe)}
    )
    first = httpx.get(f"{stack.url('soon')}soon-pkg/", headers={"Accept": _JSON}, timeout=30)
    assert first.status_code == 200, first.text
    assert first.json()["versions"] == ["1.0"], stack.live.cli("why", "soon", "soon-pkg").stdout
    page = stack.live.settings.tree_dir / "soon" / "simple" / "soon-pkg" / "index.v1.json"
    deadline = time.monotonic() + SOON + 30
    versions: list[str] = []
    while time.monotonic() < deadline:
        versions = json.loads(page.read_bytes())["versions"]
        if versions == ["1.0", "2.0"]:
            break
        time.sleep(0.5)
    assert versions == ["1.0", "2.0"]


def test_pdm_exclude_newer_agrees_with_the_virtual_index(stack: Stack, tmp_path: Path) -> None:
    import tomllib

    def locked(index_url: str, *extra: str) -> str:
        project = tmp_path / f"consumer{len(list(tmp_path.iterdir()))}"
        project.mkdir()
        (project / "pyproject.toml").write_text(
            '[project]\nname = "consumer"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
            'dependencies = ["cool-pkg"]\n\n'
            f'[[tool.pdm.source]]\nname = "pypi"\nurl = "{index_url}"\n'
        )
        result = Sandbox(tmp_path / f"sandbox-{project.name}").run(
            "pdm", "lock", *extra, cwd=project
        )
        assert result.returncode == 0, describe(result)
        [package] = tomllib.loads((project / "pdm.lock").read_text())["package"]
        return str(package["version"])

    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert locked(stack.url("cool")) == "1.0"
    assert locked(stack.url("pub"), "--exclude-newer", three_days_ago) == "1.0"
    assert locked(stack.url("pub")) == "2.0"
