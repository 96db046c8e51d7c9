"""pip, uv, poetry and pdm read a private index on a live server, each with credentials the
way its users give them; anonymous requests are answered 401 and the clients retry with them.

Every client gets an API token of a user granted "read" (never a password: the read path
takes tokens only). The access log shows that the index's pages and files under
``/sec/packages/`` were served 200 to the authenticated requests.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.builders import Dist, make_wheel
from tests.clients.conftest import Request, Served
from tests.clients.tools import TOOLS, Sandbox, binary, describe
from tests.conftest import create_database, make_settings, start_server, stop_process
from tests.uploads import upload

pytestmark = pytest.mark.clients

TOP, DEP = "hush-top", "hush-dep"
IMPORT_BOTH = "import hush_top, hush_dep; print(hush_top.__version__, hush_dep.__version__)"


@dataclass
class PrivateIndex:
    served: Served
    reader: str  # token of a user granted "read" on sec
    dists: tuple[Dist, Dist]

    @property
    def netloc(self) -> str:
        return self.served.url.removeprefix("http://")

    @property
    def simple_url(self) -> str:
        return f"{self.served.url}/sec/simple/"

    def url_with(self, user: str, password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"http://{auth}@{self.netloc}/sec/simple/"


@pytest.fixture(scope="module")
def private_index(
    postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateIndex]:
    root = tmp_path_factory.mktemp("private-clients")
    settings = make_settings(root / "data", create_database(postgres_base))
    log = root / "server.log"
    live = start_server(settings, log)
    try:
        served = Served(live, log)
        live.cli("index", "create", "sec", "--private")
        uploader = live.token("alice")
        live.cli("index", "grant", "sec", "alice", "create")  # --private: create policy listed
        dep = make_wheel(DEP, "1.0")
        top = make_wheel(TOP, "1.0", requires_dist=[f"{DEP}>=1.0"])
        for dist in (dep, top):
            with httpx.Client(base_url=served.url, timeout=60) as client:
                response = upload(client, dist, uploader, "/sec/legacy/")
            assert response.status_code == 200, response.text
        live.cli("user", "create", "reader")
        live.cli("index", "grant", "sec", "reader", "read")
        yield PrivateIndex(served, live.token("reader"), (top, dep))
    finally:
        stop_process(live.process)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def assert_read_with_credentials(requests: list[Request], files: bool = True) -> None:
    """Anonymous tries were refused with 401; the rest, with credentials, served 200."""
    ours = [r for r in requests if r.path.startswith("/sec/")]
    assert ours, requests
    assert all(r.status in (200, 401) for r in ours), ours
    assert any(r.status == 200 and r.path.startswith("/sec/simple/") for r in ours), ours
    if files:
        fetched = [r for r in ours if r.path.startswith("/sec/packages/") and r.status == 200]
        assert fetched, ours
    assert not [r for r in requests if r.path.startswith("/packages/")], requests


def assert_imports(sandbox: Sandbox, venv: Path) -> None:
    imported = sandbox.python(venv, IMPORT_BOTH)
    assert imported.returncode == 0, describe(imported)
    assert imported.stdout.split() == ["1.0", "1.0"], describe(imported)


def test_anonymous_pip_is_refused(private_index: PrivateIndex, sandbox: Sandbox) -> None:
    venv = sandbox.venv()
    mark = private_index.served.mark()
    result = sandbox.run(
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--index-url",
        private_index.simple_url,
        TOP,
    )
    assert result.returncode != 0, describe(result)
    statuses = {r.status for r in private_index.served.requests(mark)}
    assert statuses == {401}, statuses


def test_pip_with_credentials_in_the_url(private_index: PrivateIndex, sandbox: Sandbox) -> None:
    venv = sandbox.venv()
    mark = private_index.served.mark()
    url = private_index.url_with("__token__", private_index.reader)
    result = sandbox.run(
        "pip", "--python", venv / "bin" / "python", "install", "--index-url", url, TOP
    )
    assert result.returncode == 0, describe(result)
    assert_read_with_credentials(private_index.served.requests(mark))
    assert_imports(sandbox, venv)


def test_pip_with_a_netrc_file(private_index: PrivateIndex, sandbox: Sandbox) -> None:
    venv = sandbox.venv()
    sandbox.home.mkdir(parents=True, exist_ok=True)
    netrc = sandbox.home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1\nlogin __token__\npassword {private_index.reader}\n")
    netrc.chmod(0o600)
    mark = private_index.served.mark()
    result = sandbox.run(
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--index-url",
        private_index.simple_url,
        TOP,
    )
    assert result.returncode == 0, describe(result)
    # pip (requests) sends the netrc credentials with its first request.
    assert_read_with_credentials(private_index.served.requests(mark))
    assert_imports(sandbox, venv)


# The real ``keyring`` command (keyring 25, as installed beside twine) with a backend
# that reads a JSON file: pip's subprocess provider runs ``keyring --mode=creds
# --output=json get <service> [<user>]`` and this answers from the file.
_FILE_KEYRING = """
import json
import os

from keyring.backend import KeyringBackend
from keyring.credentials import SimpleCredential
from keyring.errors import PasswordSetError


class FileKeyring(KeyringBackend):
    priority = 1

    def _entries(self, service):
        with open(os.environ["TILSIT_TEST_KEYRING"]) as fh:
            return json.load(fh).get(service, {})

    def get_password(self, service, username):
        return self._entries(service).get(username)

    def get_credential(self, service, username):
        entries = self._entries(service)
        if username is None:
            username = next(iter(entries), None)
        if username is None or username not in entries:
            return None
        return SimpleCredential(username, entries[username])

    def set_password(self, service, username, password):
        raise PasswordSetError("read-only test keyring")

    def delete_password(self, service, username):
        raise PasswordSetError("read-only test keyring")
"""


def test_pip_with_keyring(private_index: PrivateIndex, sandbox: Sandbox, tmp_path: Path) -> None:
    keyring = TOOLS / "twine" / "bin" / "keyring"
    binary("twine", "keyring")
    helpers = tmp_path / "keyring"
    helpers.mkdir()
    (helpers / "filekeyring.py").write_text(_FILE_KEYRING)
    (helpers / "keyring").symlink_to(keyring)
    store = tmp_path / "keyring.json"
    store.write_text(json.dumps({private_index.netloc: {"__token__": private_index.reader}}))
    venv = sandbox.venv()
    pip_bin = binary("pip").parent
    env = {
        "PATH": os.pathsep.join([str(pip_bin), str(helpers), "/usr/bin", "/bin"]),
        "PYTHON_KEYRING_BACKEND": "filekeyring.FileKeyring",
        "PYTHONPATH": str(helpers),
        "TILSIT_TEST_KEYRING": str(store),
    }
    mark = private_index.served.mark()
    result = sandbox.run(
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--keyring-provider",
        "subprocess",
        "--index-url",
        private_index.url_with("__token__"),
        TOP,
        env=env,
    )
    assert result.returncode == 0, describe(result)
    assert_read_with_credentials(private_index.served.requests(mark))
    assert_imports(sandbox, venv)
    # The same run with an empty keyring fails: the credentials came from it.
    store.write_text("{}")
    other = sandbox.venv("empty")
    failed = sandbox.run(
        "pip",
        "--python",
        other / "bin" / "python",
        "install",
        "--keyring-provider",
        "subprocess",
        "--index-url",
        private_index.url_with("__token__"),
        TOP,
        env=env,
    )
    assert failed.returncode != 0, describe(failed)


def test_uv_with_netrc_after_401(private_index: PrivateIndex, sandbox: Sandbox) -> None:
    venv = sandbox.venv()
    netrc = sandbox.root / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login __token__ password {private_index.reader}\n")
    netrc.chmod(0o600)
    mark = private_index.served.mark()
    result = sandbox.run(
        "uv",
        "pip",
        "install",
        "--python",
        venv / "bin" / "python",
        "--index-url",
        private_index.simple_url,
        TOP,
        env={"NETRC": str(netrc)},
    )
    assert result.returncode == 0, describe(result)
    requests = private_index.served.requests(mark)
    assert requests[0].status == 401, requests
    assert_read_with_credentials(requests)
    assert_imports(sandbox, venv)


def test_uv_with_index_environment_credentials(
    private_index: PrivateIndex, sandbox: Sandbox
) -> None:
    venv = sandbox.venv()
    mark = private_index.served.mark()
    result = sandbox.run(
        "uv",
        "pip",
        "install",
        "--python",
        venv / "bin" / "python",
        "--default-index",
        f"sec={private_index.simple_url}",
        TOP,
        env={"UV_INDEX_SEC_USERNAME": "__token__", "UV_INDEX_SEC_PASSWORD": private_index.reader},
    )
    assert result.returncode == 0, describe(result)
    assert_read_with_credentials(private_index.served.requests(mark))
    assert_imports(sandbox, venv)


def _consumer(sandbox: Sandbox, extra: str) -> Path:
    project = sandbox.root / "consumer"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f'dependencies = ["{TOP}"]\n\n{extra}'
    )
    return project


def _locked(lock_file: Path) -> dict[str, str]:
    lock = tomllib.loads(lock_file.read_text())
    return {p["name"]: p["version"] for p in lock["package"]}


def test_poetry_with_http_basic(private_index: PrivateIndex, sandbox: Sandbox) -> None:
    project = _consumer(
        sandbox,
        "[tool.poetry]\npackage-mode = false\n\n"
        f'[[tool.poetry.source]]\nname = "sec"\nurl = "{private_index.simple_url}"\n'
        'priority = "primary"\n',
    )
    configured = sandbox.run(
        "poetry", "config", "http-basic.sec", "__token__", private_index.reader, cwd=project
    )
    assert configured.returncode == 0, describe(configured)
    mark = private_index.served.mark()
    result = sandbox.run("poetry", "lock", "--no-interaction", cwd=project)
    assert result.returncode == 0, describe(result)
    assert _locked(project / "poetry.lock") == {TOP: "1.0", DEP: "1.0"}
    assert_read_with_credentials(private_index.served.requests(mark), files=False)


def test_pdm_with_credentials_in_its_source(private_index: PrivateIndex, sandbox: Sandbox) -> None:
    project = _consumer(
        sandbox,
        f'[[tool.pdm.source]]\nname = "pypi"\nurl = "{private_index.simple_url}"\n'
        f'username = "__token__"\npassword = "{private_index.reader}"\n',
    )
    mark = private_index.served.mark()
    result = sandbox.run("pdm", "lock", cwd=project)
    assert result.returncode == 0, describe(result)
    assert _locked(project / "pdm.lock") == {TOP: "1.0", DEP: "1.0"}
    assert_read_with_credentials(private_index.served.requests(mark), files=False)
