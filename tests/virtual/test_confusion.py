"""The dependency-confusion attack against a virtual index, with pip and uv.

An organisation's hosted index ``internal`` holds ``acme-widgets`` 1.2.0; the
public upstream (a tilsit of its own, behind a counting :class:`Front`) publishes
``acme-widgets`` 99.0, a reserved ``acme-gadgets`` and ``interna1-tool``, a
look-alike of the internal ``internal-tool``. Through ``--extra-index-url`` pip takes 99.0 (the hole, shown
first); through the virtual index ``all`` = internal, pub every client gets 1.2.0,
the reserved name is never even asked of the upstream, and the look-alike is
hidden. A name only the upstream has comes through the proxy member on first
request.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.builders import Dist, make_wheel
from tests.clients.tools import Sandbox, describe
from tests.conftest import LiveServer, create_database, start_server, stop
from tests.proxy.front import Front
from tests.uploads import upload
from tilsit.config import load_settings

pytestmark = pytest.mark.clients

_DIRECT = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
JSON = "application/vnd.pypi.simple.v1+json"


@dataclass
class Stack:
    upstream: LiveServer
    front: Front
    live: LiveServer
    internal: Dist
    public: Dist
    only_upstream: Dist

    def url(self, index: str) -> str:
        return f"{self.live.url}/{index}/simple/"


def _post(server: LiveServer, dist: Dist, token: str, index: str = "main") -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        return upload(client, dist, token, f"/{index}/legacy/")


@pytest.fixture(scope="module")
def stack(postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("confusion")
    up_settings = load_settings(
        overrides={"data": root / "up", "database_url": create_database(postgres_base)},
        environ={},
    )
    upstream = start_server(up_settings, root / "up.log")
    down_settings = load_settings(
        overrides={"data": root / "down", "database_url": create_database(postgres_base)},
        environ={},
    )
    live = start_server(down_settings, root / "down.log", env=_DIRECT)
    front = Front(upstream.url).start()
    try:
        token = upstream.token()
        public = make_wheel("acme-widgets", "99.0")
        only_upstream = make_wheel("requests-ish", "1.0")
        for dist in (
            public,
            make_wheel("acme-gadgets", "1.0"),
            make_wheel("interna1-tool", "1.0"),
            only_upstream,
        ):
            assert _post(upstream, dist, token).status_code == 200
        live.cli("index", "create", "internal")
        live.cli("index", "create", "pub", "--proxy", f"{front.url}/simple/", "--ttl", "0")
        live.cli("index", "create", "all", "--virtual", "--members", "internal,pub")
        internal = make_wheel("acme-widgets", "1.2.0")
        for dist in (internal, make_wheel("internal-tool", "1.0")):
            response = _post(live, dist, live.token(), "internal")
            assert response.status_code == 200, response.text
        yield Stack(upstream, front, live, internal, public, only_upstream)
    finally:
        front.stop()
        stop(live)
        stop(upstream)


def _install(sandbox: Sandbox, client: str, *index_args: str) -> tuple[str, str]:
    venv = sandbox.venv(f"venv-{client}-{len(sandbox.runs)}")
    python = venv / "bin" / "python"
    command = (
        ("--python", python, "install")
        if client == "pip"
        else ("pip", "install", "--python", python)
    )
    result = sandbox.run(client, *command, *index_args, "acme-widgets")
    assert result.returncode == 0, describe(result)
    check = sandbox.python(venv, "import importlib.metadata as m; print(m.version('acme-widgets'))")
    return check.stdout.strip(), describe(check)


def test_extra_index_url_installs_the_attackers_version(stack: Stack, tmp_path: Path) -> None:
    """The hole a virtual index closes: the resolver merges both indexes and takes 99.0."""
    version, why = _install(
        Sandbox(tmp_path),
        "pip",
        "--index-url",
        stack.url("internal"),
        "--extra-index-url",
        stack.url("pub"),
    )
    assert version == "99.0", why


@pytest.mark.parametrize("client", ["pip", "uv"])
def test_the_virtual_index_installs_the_internal_version(
    stack: Stack, client: str, tmp_path: Path
) -> None:
    version, why = _install(Sandbox(tmp_path), client, "--index-url", stack.url("all"))
    assert version == "1.2.0", why
    page = httpx.get(f"{stack.url('all')}acme-widgets/", headers={"Accept": JSON}, timeout=30)
    assert page.json()["versions"] == ["1.2.0"]
    assert [f["filename"] for f in page.json()["files"]] == [stack.internal.filename]


def test_a_higher_version_published_later_upstream_changes_nothing(stack: Stack) -> None:
    later = make_wheel("acme-widgets", "99.1")
    assert _post(stack.upstream, later, stack.upstream.token()).status_code == 200
    httpx.get(f"{stack.url('pub')}acme-widgets/", timeout=30).raise_for_status()  # TTL 0: refetched
    page = httpx.get(f"{stack.url('all')}acme-widgets/", headers={"Accept": JSON}, timeout=30)
    assert page.json()["versions"] == ["1.2.0"]


def test_a_reserved_name_is_never_asked_of_the_upstream(stack: Stack, tmp_path: Path) -> None:
    stack.live.cli("index", "reserve", "internal", "acme-*")
    before = len(stack.front.requests("/acme-gadgets/"))
    response = httpx.get(f"{stack.url('all')}acme-gadgets/", timeout=30)
    assert response.status_code == 404
    assert "reserved by index 'internal'" in response.text, response.text
    assert len(stack.front.requests("/acme-gadgets/")) == before  # not even asked
    sandbox = Sandbox(tmp_path)
    venv = sandbox.venv()
    result = sandbox.run(
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--index-url",
        stack.url("all"),
        "acme-gadgets",
    )
    assert result.returncode != 0, describe(result)
    # Nor may anyone create it in another hosted index.
    stack.live.cli("index", "create", "team")
    refused = _post(stack.live, make_wheel("acme-foo", "1.0"), stack.live.token(), "team")
    assert refused.status_code == 403
    assert "reserved by index 'internal'" in refused.text


def test_a_look_alike_of_an_internal_name_is_hidden(stack: Stack) -> None:
    response = httpx.get(f"{stack.url('all')}interna1-tool/", timeout=30)
    assert response.status_code == 404
    assert "looks like 'internal-tool' of index 'internal'" in response.text, response.text
    listing = httpx.get(stack.url("all"), headers={"Accept": JSON}, timeout=30).json()
    assert "interna1-tool" not in [p["name"] for p in listing["projects"]]


@pytest.mark.parametrize("client", ["pip", "uv"])
def test_a_name_only_the_proxy_has_comes_on_first_request(
    stack: Stack, client: str, tmp_path: Path
) -> None:
    sandbox = Sandbox(tmp_path)
    venv = sandbox.venv()
    python = venv / "bin" / "python"
    command = (
        ("--python", python, "install")
        if client == "pip"
        else ("pip", "install", "--python", python)
    )
    result = sandbox.run(client, *command, "--index-url", stack.url("all"), "requests-ish")
    assert result.returncode == 0, describe(result)
    # The fetch is journaled and rendered after the response (the proxy's write batch):
    # then the file is linked under the virtual index too.
    tree = stack.live.settings.tree_dir / "all" / "packages"
    deadline = time.monotonic() + 30
    while not list(tree.rglob(stack.only_upstream.filename)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(tree.rglob(stack.only_upstream.filename))


def test_a_page_a_policy_empties_says_why(stack: Stack) -> None:
    """With a cool-down longer than the upstream files' age, the name is a 404 whose body
    names the rule and when the file appears; /_/why/ and `tilsit why` say the same."""
    stack.live.cli("policy", "set", "all", "--cooldown", "3 days")
    try:
        response = httpx.get(f"{stack.url('all')}requests-ish/", timeout=30)
        assert response.status_code == 404
        assert "cool-down" in response.text and "until" in response.text, response.text
        why = httpx.get(f"{stack.live.url}/_/why/all/requests-ish", timeout=30)
        assert why.status_code == 200, why.text
        [entry] = why.json()["files"]
        assert entry["filename"] == stack.only_upstream.filename
        assert (entry["shown"], entry["rule"]) == (False, "cooldown")
        assert entry["until"] is not None
        told = stack.live.cli("why", "all", "requests-ish")
        assert f"hidden {stack.only_upstream.filename}  [cooldown]" in told.stdout, told.stdout
        # The hosted name is ours: never cooled down.
        page = httpx.get(f"{stack.url('all')}acme-widgets/", headers={"Accept": JSON}, timeout=30)
        assert page.json()["versions"] == ["1.2.0"]
    finally:
        stack.live.cli("policy", "set", "all", "--no-cooldown")


def _consumer(sandbox: Sandbox, source: str) -> Path:
    project = sandbox.root / "consumer"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["acme-widgets"]\n\n' + source
    )
    return project


def test_poetry_locks_the_internal_version(stack: Stack, tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    project = _consumer(
        sandbox,
        "[tool.poetry]\npackage-mode = false\n\n"
        f'[[tool.poetry.source]]\nname = "all"\nurl = "{stack.url("all")}"\npriority = "primary"\n',
    )
    result = sandbox.run("poetry", "lock", "--no-interaction", cwd=project)
    assert result.returncode == 0, describe(result)
    lock = tomllib.loads((project / "poetry.lock").read_text())
    [package] = lock["package"]
    assert (package["name"], package["version"]) == ("acme-widgets", "1.2.0")
    assert [f["hash"] for f in package["files"]] == [f"sha256:{stack.internal.sha256}"]


def test_pdm_locks_the_internal_version(stack: Stack, tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    project = _consumer(
        sandbox, f'[[tool.pdm.source]]\nname = "pypi"\nurl = "{stack.url("all")}"\n'
    )
    result = sandbox.run("pdm", "lock", cwd=project)
    assert result.returncode == 0, describe(result)
    lock = tomllib.loads((project / "pdm.lock").read_text())
    [package] = lock["package"]
    assert (package["name"], package["version"]) == ("acme-widgets", "1.2.0")
    assert [f["hash"] for f in package["files"]] == [f"sha256:{stack.internal.sha256}"]


def test_an_upload_to_the_virtual_index_names_its_hosted_members(stack: Stack) -> None:
    refused = _post(stack.live, make_wheel("acme-widgets", "1.3.0"), stack.live.token(), "all")
    assert refused.status_code == 405
    assert "upload to one of its hosted members: internal" in refused.text, refused.text


def test_xmlrpc_answers_what_the_pages_show(stack: Stack) -> None:
    """bandersnatch-era clients ask over XML-RPC: a virtual index's releases are its pages'."""
    import xmlrpc.client

    with xmlrpc.client.ServerProxy(f"{stack.live.url}/all/pypi") as server:
        assert server.package_releases("acme-widgets") == ["1.2.0"]
        assert server.package_releases("Acme_Widgets", True) == ["1.2.0"]
        assert server.package_releases("no-such-project") == []
        changes = server.changelog_since_serial(0)
        assert "acme-widgets" in {change[0] for change in changes}
