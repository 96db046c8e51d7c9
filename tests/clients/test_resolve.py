"""Resolving and installing with pip, uv, poetry and pdm from the simple API.

Resolution must come from the ``.metadata`` files beside the wheels (PEP 658/714): the
access log shows each client fetched them and downloaded no distribution while resolving.
Then pip and uv install for real into a fresh virtualenv and the package imports.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass

import pytest

from tests.builders import Dist, make_sdist, make_wheel
from tests.clients.conftest import Request, Served
from tests.clients.tools import Sandbox, describe

pytestmark = pytest.mark.clients

TOP, DEP = "meta-top", "meta-dep"


@dataclass(frozen=True)
class Published:
    top: Dist  # meta-top 1.0, requires meta-dep>=1.0
    dep: Dist  # meta-dep 1.1, the newest: what every resolver must pick
    all: tuple[Dist, ...]

    @property
    def chosen(self) -> tuple[Dist, Dist]:
        return self.top, self.dep


@pytest.fixture(scope="module")
def published(served: Served, token: str) -> Published:
    top = make_wheel(TOP, "1.0", requires_dist=[f"{DEP}>=1.0"])
    dep = make_wheel(DEP, "1.1")
    dists = (
        make_wheel(DEP, "1.0"),
        dep,
        make_sdist(DEP, "1.1"),
        top,
        make_sdist(TOP, "1.0", requires_dist=[f"{DEP}>=1.0"]),
    )
    for dist in dists:
        served.upload(dist, token)
    return Published(top, dep, dists)


def assert_resolved_from_metadata(requests: list[Request], wheels: tuple[Dist, ...]) -> None:
    """Each wheel's core metadata was fetched, and no distribution at all."""
    fetched = {r.path.rsplit("/", 1)[1] for r in requests if r.path.startswith("/packages/")}
    metadata = {f"{w.filename}.metadata" for w in wheels}
    assert metadata <= fetched, f"expected {sorted(metadata)} among {requests}"
    downloads = [n for n in fetched if n.endswith((".whl", ".tar.gz", ".zip"))]
    assert downloads == [], f"distributions downloaded while resolving: {requests}"
    failed = [r for r in requests if r.status >= 400]
    assert failed == [], failed


def test_pip_resolves_from_metadata_files(
    served: Served, sandbox: Sandbox, published: Published
) -> None:
    venv = sandbox.venv()
    report = sandbox.root / "report.json"
    mark = served.mark()
    result = sandbox.run(
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--dry-run",
        "--report",
        report,
        "--index-url",
        served.simple_url,
        TOP,
    )
    assert result.returncode == 0, describe(result)
    chosen = {
        item["metadata"]["name"]: item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert chosen == {TOP: "1.0", DEP: "1.1"}
    assert_resolved_from_metadata(served.requests(mark), published.chosen)


def test_uv_pip_compile_resolves_from_metadata_files(
    served: Served, sandbox: Sandbox, published: Published
) -> None:
    venv = sandbox.venv()
    requirements = sandbox.root / "requirements.in"
    requirements.write_text(f"{TOP}\n")
    mark = served.mark()
    result = sandbox.run(
        "uv",
        "pip",
        "compile",
        "--python",
        venv / "bin" / "python",
        "--index-url",
        served.simple_url,
        "--no-header",
        "--no-annotate",
        requirements,
    )
    assert result.returncode == 0, describe(result)
    assert result.stdout.split() == [f"{DEP}==1.1", f"{TOP}==1.0"], describe(result)
    assert_resolved_from_metadata(served.requests(mark), published.chosen)


def test_poetry_lock_resolves_from_metadata_files(
    served: Served, sandbox: Sandbox, published: Published
) -> None:
    project = sandbox.root / "consumer"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f'dependencies = ["{TOP}"]\n\n'
        "[tool.poetry]\npackage-mode = false\n\n"
        # A primary source replaces PyPI: poetry asks nothing else.
        f'[[tool.poetry.source]]\nname = "tilsit"\nurl = "{served.simple_url}"\n'
        'priority = "primary"\n'
    )
    mark = served.mark()
    result = sandbox.run("poetry", "lock", "--no-interaction", cwd=project)
    assert result.returncode == 0, describe(result)
    lock = tomllib.loads((project / "poetry.lock").read_text())
    locked = {p["name"]: p for p in lock["package"]}
    assert {name: p["version"] for name, p in locked.items()} == {TOP: "1.0", DEP: "1.1"}
    for wheel in published.chosen:
        name = wheel.filename.split("-")[0].replace("_", "-")
        assert locked[name]["source"]["url"] == served.simple_url.rstrip("/")
        hashes = {f["file"]: f["hash"] for f in locked[name]["files"]}
        assert hashes[wheel.filename] == f"sha256:{wheel.sha256}"
    assert_resolved_from_metadata(served.requests(mark), published.chosen)


def test_pdm_lock_resolves_from_metadata_files(
    served: Served, sandbox: Sandbox, published: Published
) -> None:
    project = sandbox.root / "consumer"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f'dependencies = ["{TOP}"]\n\n'
        # A source named "pypi" replaces PyPI.
        f'[[tool.pdm.source]]\nname = "pypi"\nurl = "{served.simple_url}"\n'
    )
    mark = served.mark()
    result = sandbox.run("pdm", "lock", cwd=project)
    assert result.returncode == 0, describe(result)
    lock = tomllib.loads((project / "pdm.lock").read_text())
    locked = {p["name"]: p for p in lock["package"]}
    assert {name: p["version"] for name, p in locked.items()} == {TOP: "1.0", DEP: "1.1"}
    for wheel in published.chosen:
        name = wheel.filename.split("-")[0].replace("_", "-")
        hashes = {f["file"]: f["hash"] for f in locked[name]["files"]}
        assert hashes[wheel.filename] == f"sha256:{wheel.sha256}"
    assert_resolved_from_metadata(served.requests(mark), published.chosen)


IMPORT_BOTH = (
    "import meta_dep, meta_top\n"
    "from importlib.metadata import version\n"
    "print(meta_top.__version__, meta_dep.__version__, version('meta-top'), version('meta-dep'))\n"
)


def assert_installed(
    served: Served, sandbox: Sandbox, published: Published, requests: list[Request]
) -> None:
    downloads = {r.path.rsplit("/", 1)[1] for r in requests if r.path.endswith(".whl")}
    assert downloads == {w.filename for w in published.chosen}, requests
    assert all(r.status == 200 for r in requests), requests
    imported = sandbox.python(sandbox.root / "venv", IMPORT_BOTH)
    assert imported.returncode == 0, describe(imported)
    assert imported.stdout.split() == ["1.0", "1.1", "1.0", "1.1"], describe(imported)


def test_pip_installs_into_a_fresh_venv(
    served: Served, sandbox: Sandbox, published: Published
) -> None:
    venv = sandbox.venv()
    mark = served.mark()
    result = sandbox.run(
        "pip", "--python", venv / "bin" / "python", "install", "--index-url", served.simple_url, TOP
    )
    assert result.returncode == 0, describe(result)
    assert "Successfully installed meta-dep-1.1 meta-top-1.0" in result.stdout, describe(result)
    assert_installed(served, sandbox, published, served.requests(mark))


def test_uv_installs_into_a_fresh_venv(
    served: Served, sandbox: Sandbox, published: Published
) -> None:
    venv = sandbox.venv()
    mark = served.mark()
    result = sandbox.run(
        "uv",
        "pip",
        "install",
        "--python",
        venv / "bin" / "python",
        "--index-url",
        served.simple_url,
        TOP,
    )
    assert result.returncode == 0, describe(result)
    assert_installed(served, sandbox, published, served.requests(mark))


def test_index_prefixed_urls(served: Served, sandbox: Sandbox, token: str) -> None:
    """The default index also answers under its name: /main/legacy/ and /main/simple/."""
    wheel = make_wheel("prefixed", "1.0")
    dist = sandbox.root / "dist"
    dist.mkdir()
    mark = served.mark()
    uploaded = sandbox.run(
        "twine",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        f"{served.url}/main/legacy/",
        "-u",
        "__token__",
        "-p",
        token,
        wheel.write(dist),
    )
    assert uploaded.returncode == 0, describe(uploaded)
    venv = sandbox.venv()
    result = sandbox.run(
        "uv",
        "pip",
        "install",
        "--python",
        venv / "bin" / "python",
        "--index-url",
        f"{served.url}/main/simple/",
        "prefixed",
    )
    assert result.returncode == 0, describe(result)
    requests = served.requests(mark)
    assert Request("POST", "/main/legacy/", 200) in requests
    assert Request("GET", "/main/simple/prefixed/", 200) in requests
    assert not any(r.path.startswith(("/simple/", "/legacy/")) for r in requests), requests
    imported = sandbox.python(venv, "import prefixed; print(prefixed.__version__)")
    assert imported.stdout.strip() == "1.0", describe(imported)
