"""Publishing with twine, ``uv publish``, poetry, pdm and hatch to ``POST /legacy/``.

Each client uploads prebuilt distributions (from :mod:`tests.builders`) exactly as a
user would, and each test checks three things: the client's exit code and output, the
requests the server logged, and what the server serves afterwards.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.builders import Dist, make_sdist, make_wheel
from tests.clients.conftest import Request, Served
from tests.clients.tools import Sandbox, describe, output
from tests.uploads import upload

pytestmark = pytest.mark.clients

UNKNOWN_TOKEN = "tilsit-" + "A" * 43  # well formed, never issued


@dataclass(frozen=True)
class Release:
    """Distributions of one project version, written to their own directory."""

    name: str
    version: str
    dists: tuple[Dist, ...]
    directory: Path

    @classmethod
    def write(cls, root: Path, label: str, *dists: Dist) -> Release:
        directory = root / label
        directory.mkdir(parents=True)
        for dist in dists:
            dist.write(directory)
        stem = dists[0].filename.split("-")
        return cls(stem[0].replace("_", "-"), stem[1].removesuffix(".tar.gz"), dists, directory)

    @property
    def paths(self) -> list[Path]:
        return sorted(self.directory.iterdir())


Publish = Callable[[Sandbox, Served, str, Release, bool], subprocess.CompletedProcess[str]]


def _twine(
    sandbox: Sandbox, served: Served, token: str, release: Release, skip_existing: bool
) -> subprocess.CompletedProcess[str]:
    return sandbox.run(
        "twine",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        served.upload_url,
        "-u",
        "__token__",
        "-p",
        token,
        *(["--skip-existing"] if skip_existing else []),
        *release.paths,
    )


def _uv(
    sandbox: Sandbox, served: Served, token: str, release: Release, skip_existing: bool
) -> subprocess.CompletedProcess[str]:
    # uv has no --skip-existing: --check-url makes it look files up in the index first.
    return sandbox.run(
        "uv",
        "publish",
        "--publish-url",
        served.upload_url,
        "--trusted-publishing",
        "never",
        "--token",
        token,
        *(["--check-url", served.simple_url] if skip_existing else []),
        *release.paths,
    )


def _project_dir(sandbox: Sandbox, release: Release, build_system: str = "") -> Path:
    """A pyproject.toml for poetry and pdm, which publish only from inside a project."""
    project = sandbox.root / f"project-{release.name}"
    project.mkdir(exist_ok=True)
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "{release.name}"\nversion = "{release.version}"\n'
        f'requires-python = ">=3.9"\n{build_system}'
    )
    return project


def _poetry_repository(served: Served, token: str) -> dict[str, str]:
    """The repository "tilsit" for poetry, configured by environment."""
    return {
        "POETRY_REPOSITORIES_TILSIT_URL": served.upload_url,
        "POETRY_HTTP_BASIC_TILSIT_USERNAME": "__token__",
        "POETRY_HTTP_BASIC_TILSIT_PASSWORD": token,
    }


def _poetry(
    sandbox: Sandbox, served: Served, token: str, release: Release, skip_existing: bool
) -> subprocess.CompletedProcess[str]:
    # poetry publishes the files in --dist-dir named for the project's name and version.
    project = _project_dir(
        sandbox,
        release,
        '[build-system]\nrequires = ["poetry-core>=2"]\nbuild-backend = "poetry.core.masonry.api"\n',
    )
    return sandbox.run(
        "poetry",
        "publish",
        "--no-interaction",
        "--repository",
        "tilsit",
        "--dist-dir",
        release.directory,
        *(["--skip-existing"] if skip_existing else []),
        cwd=project,
        env=_poetry_repository(served, token),
    )


def _pdm(
    sandbox: Sandbox, served: Served, token: str, release: Release, skip_existing: bool
) -> subprocess.CompletedProcess[str]:
    return sandbox.run(
        "pdm",
        "publish",
        "--no-build",
        "--dest",
        release.directory,
        "--repository",
        served.upload_url,
        "--username",
        "__token__",
        "--password",
        token,
        *(["--skip-existing"] if skip_existing else []),
        cwd=_project_dir(sandbox, release),
    )


def _hatch(
    sandbox: Sandbox, served: Served, token: str, release: Release, skip_existing: bool
) -> subprocess.CompletedProcess[str]:
    # hatch has no flag: it always looks the files up at <repo>/+simple/<name>/ first.
    return sandbox.run(
        "hatch",
        "publish",
        "--no-prompt",
        "--repo",
        served.upload_url,
        "--user",
        "__token__",
        "--auth",
        token,
        *release.paths,
    )


PUBLISHERS: dict[str, Publish] = {
    "twine": _twine,
    "uv": _uv,
    "poetry": _poetry,
    "pdm": _pdm,
    "hatch": _hatch,
}


@pytest.fixture(params=list(PUBLISHERS))
def tool(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def other_project_token(served: Served) -> str:
    return served.token("--project", "other")


def posts(requests: list[Request]) -> list[int]:
    """Statuses of the uploads among ``requests``, sorted."""
    return sorted(r.status for r in requests if r.method == "POST")


def assert_server_said(tool: str, result: subprocess.CompletedProcess[str], message: str) -> None:
    """The server's message reached the user.

    pdm prints only the status line (its caching transport drops the reason phrase) and
    writes the response body to the debug log its output points to. twine wraps lines
    at 80 columns whatever COLUMNS says, so whitespace is compared loosely.
    """
    shown = output(result)
    if tool == "pdm":
        found = re.search(r"See (\S+) for detailed debug log", shown)
        assert found, describe(result)
        shown = Path(found[1]).read_text()
    assert message in " ".join(shown.split()), describe(result)


def test_upload_then_identical_reupload(
    served: Served, sandbox: Sandbox, token: str, tool: str
) -> None:
    name = f"first-{tool}"
    wheel, sdist = make_wheel(name, "1.0"), make_sdist(name, "1.0")
    release = Release.write(sandbox.root, "dist", wheel, sdist)
    publish = PUBLISHERS[tool]

    mark = served.mark()
    result = publish(sandbox, served, token, release, False)
    assert result.returncode == 0, describe(result)
    assert posts(served.requests(mark)) == [200, 200]
    assert served.files(name) == {wheel.filename: wheel.sha256, sdist.filename: sdist.sha256}

    mark = served.mark()
    again = publish(sandbox, served, token, release, False)
    assert again.returncode == 0, describe(again)
    requests = served.requests(mark)
    if tool == "hatch":
        # hatch found both files on the page below its upload URL and sent nothing.
        assert Request("GET", f"/legacy/+simple/{name}/", 200) in requests
        assert posts(requests) == []
        assert output(again).count("already exists") == 2, describe(again)
    else:
        # The server answers an identical re-upload with 200, as PyPI does.
        assert posts(requests) == [200, 200]
    assert served.files(name) == {wheel.filename: wheel.sha256, sdist.filename: sdist.sha256}


def test_other_bytes_under_a_used_filename_are_refused(
    served: Served, sandbox: Sandbox, token: str, tool: str
) -> None:
    name = f"clash-{tool}"
    original = make_wheel(name, "1.0")
    served.upload(original, token)
    other = make_wheel(name, "1.0", summary="Other bytes under the same filename")
    assert other.filename == original.filename and other.sha256 != original.sha256

    mark = served.mark()
    result = PUBLISHERS[tool](
        sandbox, served, token, Release.write(sandbox.root, "dist", other), False
    )
    requests = served.requests(mark)
    if tool == "hatch":
        # hatch compares filenames only: it reports the file as present and skips it.
        assert result.returncode == 0, describe(result)
        assert "already exists" in output(result), describe(result)
        assert posts(requests) == []
    else:
        assert result.returncode != 0, describe(result)
        assert posts(requests) == [400]
        # twine, without --verbose, prints only the status line's reason phrase.
        assert_server_said(tool, result, "File already exists")
    assert served.files(name) == {original.filename: original.sha256}


def test_unknown_token_is_refused_with_403(served: Served, sandbox: Sandbox, tool: str) -> None:
    name = f"badtoken-{tool}"
    release = Release.write(sandbox.root, "dist", make_wheel(name, "1.0"))

    mark = served.mark()
    result = PUBLISHERS[tool](sandbox, served, UNKNOWN_TOKEN, release, False)
    assert result.returncode != 0, describe(result)
    assert "403" in output(result), describe(result)
    assert posts(served.requests(mark)) == [403]
    assert_server_said(tool, result, "the API token is not known to this server")
    assert served.page(name) is None


def test_token_scoped_to_another_project_is_refused(
    served: Served, sandbox: Sandbox, other_project_token: str, tool: str
) -> None:
    name = f"scoped-{tool}"
    release = Release.write(sandbox.root, "dist", make_wheel(name, "1.0"))

    mark = served.mark()
    result = PUBLISHERS[tool](sandbox, served, other_project_token, release, False)
    assert result.returncode != 0, describe(result)
    assert "403" in output(result), describe(result)
    assert posts(served.requests(mark)) == [403]
    assert_server_said(tool, result, f"This API token is not valid for project '{name}'")
    assert served.page(name) is None


@pytest.mark.parametrize(
    ("skipper", "message"),
    [("poetry", "File exists. Skipping"), ("pdm", "because it appears to already exist")],
)
def test_skip_existing_skips_the_clash_and_uploads_the_rest(
    served: Served, sandbox: Sandbox, token: str, skipper: str, message: str
) -> None:
    # These clients upload, and treat a 400 whose reason or body says "already exist"
    # as a file to skip.
    name = f"skip-{skipper}"
    original = make_wheel(name, "1.0")
    served.upload(original, token)
    other, sdist = make_wheel(name, "1.0", summary="Other bytes"), make_sdist(name, "1.0")

    mark = served.mark()
    result = PUBLISHERS[skipper](
        sandbox, served, token, Release.write(sandbox.root, "dist", other, sdist), True
    )
    assert result.returncode == 0, describe(result)
    assert message in output(result), describe(result)
    assert posts(served.requests(mark)) == [200, 400]
    assert served.files(name) == {original.filename: original.sha256, sdist.filename: sdist.sha256}


def test_uv_check_url_skips_files_already_in_the_index(
    served: Served, sandbox: Sandbox, token: str
) -> None:
    name = "skip-uv"
    wheel, sdist = make_wheel(name, "1.0"), make_sdist(name, "1.0")
    served.upload(wheel, token)

    mark = served.mark()
    result = _uv(sandbox, served, token, Release.write(sandbox.root, "dist", wheel, sdist), True)
    assert result.returncode == 0, describe(result)
    assert f"File {wheel.filename} already exists, skipping" in output(result), describe(result)
    requests = served.requests(mark)
    assert Request("GET", f"/simple/{name}/", 200) in requests
    assert posts(requests) == [200]  # only the sdist was sent
    assert served.files(name) == {wheel.filename: wheel.sha256, sdist.filename: sdist.sha256}

    # The page's sha256 tells uv that other bytes under that filename are a conflict.
    other = make_wheel(name, "1.0", summary="Other bytes")
    mark = served.mark()
    clash = _uv(sandbox, served, token, Release.write(sandbox.root, "clash", other), True)
    assert clash.returncode != 0, describe(clash)
    assert "Local file and index file do not match" in output(clash), describe(clash)
    assert wheel.sha256 in output(clash), describe(clash)
    assert posts(served.requests(mark)) == []
    assert served.files(name) == {wheel.filename: wheel.sha256, sdist.filename: sdist.sha256}


def test_twine_skip_existing(served: Served, sandbox: Sandbox, token: str) -> None:
    """twine (since 6.1) refuses --skip-existing for any index but PyPI and TestPyPI, before
    sending anything. Older twines, and pdm which copied the rule, skip a 400 whose reason
    or body says "already exist": the server's answer is checked against twine's own rule."""
    name = "skip-twine"
    wheel = make_wheel(name, "1.0")
    served.upload(wheel, token)
    other = make_wheel(name, "1.0", summary="Other bytes")

    mark = served.mark()
    result = _twine(sandbox, served, token, Release.write(sandbox.root, "dist", other), True)
    assert result.returncode != 0, describe(result)
    assert "UnsupportedConfiguration" in output(result), describe(result)
    assert "--skip-existing" in output(result), describe(result)
    assert served.requests(mark) == []

    with httpx.Client(base_url=served.url, timeout=60) as client:
        response = upload(client, other, token)
    assert response.status_code == 400
    answer = {
        "status_code": response.status_code,
        "reason": response.reason_phrase,
        "text": response.text,
    }
    rule = (
        "import json, sys, types\n"
        "from twine.commands.upload import skip_upload\n"
        "print(skip_upload(types.SimpleNamespace(**json.loads(sys.argv[1])), True, None))\n"
    )
    check = sandbox.run("twine", "-c", rule, json.dumps(answer), executable="python")
    assert check.returncode == 0, describe(check)
    assert check.stdout.strip() == "True", describe(check)
    assert served.files(name) == {wheel.filename: wheel.sha256}


def test_hatch_reads_the_simple_page_below_the_upload_url(served: Served, token: str) -> None:
    name = "plus-simple"
    wheel = make_wheel(name, "1.0")
    served.upload(wheel, token)
    for path in (f"/legacy/+simple/{name}/", f"/main/legacy/+simple/{name}/"):
        # hatch sends no Accept header and scans the HTML for <a>filename</a>.
        status, body = served.get(path, accept="*/*")
        assert status == 200, (path, body)
        assert f">{wheel.filename}</a>" in body.decode(), (path, body)
    status, _ = served.get("/legacy/+simple/no-such-project/", accept="*/*")
    assert status == 404


REAL_PYPROJECT = """\
[project]
name = "real-thing"
version = "0.3.0"
description = "Built by poetry in the client tests"
readme = "README.md"
license = "MIT"
license-files = ["LICENSE"]
requires-python = ">=3.9"
authors = [{ name = "Test Person", email = "test@example.invalid" }]
classifiers = ["Programming Language :: Python :: 3"]
dependencies = ["real-dep>=1.0; python_version >= '3.9'"]

[project.optional-dependencies]
extra = ["not-published"]

[project.urls]
Homepage = "https://example.invalid/real-thing"

[tool.poetry]
packages = [{ include = "real_thing", from = "src" }]

[build-system]
requires = ["poetry-core>=2.0"]
build-backend = "poetry.core.masonry.api"
"""


def test_poetry_built_project_round_trip(served: Served, sandbox: Sandbox, token: str) -> None:
    """What a build backend really writes (Metadata-Version 2.4, License-Expression,
    License-File, a Markdown README, markers and extras) is accepted and served back."""
    served.upload(make_wheel("real-dep", "1.0"), token)
    project = sandbox.root / "real"
    (project / "src" / "real_thing").mkdir(parents=True)
    (project / "src" / "real_thing" / "__init__.py").write_text('__version__ = "0.3.0"\n')
    (project / "README.md").write_text("# Real thing\n\nA *real* project, built by poetry.\n")
    (project / "LICENSE").write_text("MIT License\n\nCopyright (c) 2024 Test Person\n")
    (project / "pyproject.toml").write_text(REAL_PYPROJECT)

    built = sandbox.run("poetry", "build", "--no-interaction", cwd=project)
    assert built.returncode == 0, describe(built)
    wheel_path = project / "dist" / "real_thing-0.3.0-py3-none-any.whl"
    sdist_path = project / "dist" / "real_thing-0.3.0.tar.gz"
    with zipfile.ZipFile(wheel_path) as archive:
        metadata = archive.read("real_thing-0.3.0.dist-info/METADATA")
    assert b"Metadata-Version: 2.4" in metadata

    published = sandbox.run(
        "poetry",
        "publish",
        "--no-interaction",
        "--repository",
        "tilsit",
        cwd=project,
        env=_poetry_repository(served, token),
    )
    assert published.returncode == 0, describe(published)
    page = served.page("real-thing")
    assert page is not None
    files = {f["filename"]: f for f in page["files"]}
    assert {name: f["hashes"]["sha256"] for name, f in files.items()} == {
        wheel_path.name: hashlib.sha256(wheel_path.read_bytes()).hexdigest(),
        sdist_path.name: hashlib.sha256(sdist_path.read_bytes()).hexdigest(),
    }
    # The core metadata beside the wheel is the wheel's METADATA, byte for byte.
    wheel_entry = files[wheel_path.name]
    assert wheel_entry["requires-python"] == ">=3.9"
    assert wheel_entry["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    wheel_url = urljoin(f"{served.simple_url}real-thing/", wheel_entry["url"])
    status, served_metadata = served.get(f"{urlsplit(wheel_url).path}.metadata", accept="*/*")
    assert (status, served_metadata) == (200, metadata)
    status, body = served.get("/pypi/real-thing/json", accept="application/json")
    assert status == 200, body
    info = json.loads(body)["info"]
    assert (info["version"], info["license_expression"], info["requires_python"]) == (
        "0.3.0",
        "MIT",
        ">=3.9",
    )
    assert info["description_content_type"] == "text/markdown"

    venv = sandbox.venv()
    installed = sandbox.run(
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--index-url",
        served.simple_url,
        "real-thing",
    )
    assert installed.returncode == 0, describe(installed)
    assert "Successfully installed real-dep-1.0 real-thing-0.3.0" in installed.stdout
    imported = sandbox.python(venv, "import real_thing; print(real_thing.__version__)")
    assert imported.stdout.strip() == "0.3.0", describe(imported)
