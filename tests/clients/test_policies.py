"""What installers must honour in the pages: yanks (PEP 592), Requires-Python, upload
times (PEP 700: uv --exclude-newer, pip --uploaded-prior-to) and hashes (--require-hashes).

Each test checks the version the installer picked, and where the point is that a file
was never looked at, the access log.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime

import pytest

from tests.builders import Dist, make_wheel
from tests.clients.conftest import Served
from tests.clients.tools import Sandbox, describe, output
from tests.conftest import need

pytestmark = pytest.mark.clients


def pip_picks(served: Served, sandbox: Sandbox, *requirement: str) -> dict[str, str]:
    """What ``pip install --dry-run`` would install: {name: version}."""
    venv = sandbox.root / "venv"
    if not venv.exists():
        sandbox.venv()
    report = sandbox.root / "report.json"
    report.unlink(missing_ok=True)
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
        *requirement,
    )
    assert result.returncode == 0, describe(result)
    return {
        item["metadata"]["name"]: item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }


def uv_picks(served: Served, sandbox: Sandbox, requirement: str, *options: str) -> list[str]:
    """The pins ``uv pip compile`` writes for one requirement."""
    venv = sandbox.root / "venv"
    if not venv.exists():
        sandbox.venv()
    source = sandbox.root / "requirements.in"
    source.write_text(f"{requirement}\n")
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
        *options,
        source,
    )
    assert result.returncode == 0, describe(result)
    return result.stdout.split()


def upload_all(served: Served, token: str, *dists: Dist) -> None:
    for dist in dists:
        served.upload(dist, token)


def test_yanked_release_is_skipped_unless_pinned(
    served: Served, sandbox: Sandbox, token: str
) -> None:
    upload_all(served, token, make_wheel("yanky", "1.0"), make_wheel("yanky", "2.0"))
    served.cli("yank", "yanky", "2.0", "--reason", "broken build")
    page = served.page("yanky")
    assert page is not None
    assert {f["filename"]: f["yanked"] for f in page["files"]} == {
        "yanky-1.0-py3-none-any.whl": False,
        "yanky-2.0-py3-none-any.whl": "broken build",
    }

    assert pip_picks(served, sandbox, "yanky") == {"yanky": "1.0"}
    assert uv_picks(served, sandbox, "yanky") == ["yanky==1.0"]

    # PEP 592: an exact pin still gets the yanked release, with a warning.
    venv = sandbox.root / "venv"
    result = sandbox.run(
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--index-url",
        served.simple_url,
        "yanky==2.0",
    )
    assert result.returncode == 0, describe(result)
    assert "yanked" in output(result), describe(result)
    assert "broken build" in output(result), describe(result)
    imported = sandbox.python(venv, "import yanky; print(yanky.__version__)")
    assert imported.stdout.strip() == "2.0", describe(imported)


def test_requires_python_is_honoured(served: Served, sandbox: Sandbox, token: str) -> None:
    future = make_wheel("future-only", "3.0", requires_python=">=3.99")
    upload_all(served, token, make_wheel("future-only", "1.0"), future)

    mark = served.mark()
    assert pip_picks(served, sandbox, "future-only") == {"future-only": "1.0"}
    # pip dropped 3.0 on the page's data-requires-python, without fetching anything of it.
    touched = [r for r in served.requests(mark) if future.filename in r.path]
    assert touched == []

    venv = sandbox.root / "venv"
    pinned = sandbox.run(
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--dry-run",
        "--index-url",
        served.simple_url,
        "future-only==3.0",
    )
    assert pinned.returncode != 0, describe(pinned)
    assert "Requires-Python >=3.99" in output(pinned), describe(pinned)

    assert uv_picks(served, sandbox, "future-only") == ["future-only==1.0"]


def _between_uploads(served: Served, project: str) -> str:
    """A moment between the upload times of the project's two files, from its page."""
    page = served.page(project)
    assert page is not None
    first, second = sorted(
        datetime.fromisoformat(f["upload-time"].replace("Z", "+00:00")) for f in page["files"]
    )
    assert first < second, page
    return (first + (second - first) / 2).isoformat().replace("+00:00", "Z")


def test_uv_exclude_newer_picks_the_older_upload(
    served: Served, sandbox: Sandbox, token: str
) -> None:
    upload_all(served, token, make_wheel("timed-uv", "1.0"), make_wheel("timed-uv", "2.0"))
    cutoff = _between_uploads(served, "timed-uv")

    assert uv_picks(served, sandbox, "timed-uv") == ["timed-uv==2.0"]
    venv = sandbox.root / "venv"
    result = sandbox.run(
        "uv",
        "pip",
        "install",
        "--python",
        venv / "bin" / "python",
        "--index-url",
        served.simple_url,
        "--exclude-newer",
        cutoff,
        "timed-uv",
    )
    assert result.returncode == 0, describe(result)
    imported = sandbox.python(venv, "import timed_uv; print(timed_uv.__version__)")
    assert imported.stdout.strip() == "1.0", describe(imported)


def test_pip_uploaded_prior_to_picks_the_older_upload(
    served: Served, sandbox: Sandbox, token: str
) -> None:
    usage = sandbox.run("pip", "install", "--help")
    need("--uploaded-prior-to" in usage.stdout, "this pip has no install --uploaded-prior-to")
    upload_all(served, token, make_wheel("timed-pip", "1.0"), make_wheel("timed-pip", "2.0"))
    cutoff = _between_uploads(served, "timed-pip")

    assert pip_picks(served, sandbox, "timed-pip") == {"timed-pip": "2.0"}
    assert pip_picks(served, sandbox, "--uploaded-prior-to", cutoff, "timed-pip") == {
        "timed-pip": "1.0"
    }


def test_uv_require_hashes_with_the_sha256_from_the_json_api(
    served: Served, sandbox: Sandbox, token: str
) -> None:
    wheel = make_wheel("hashed", "1.0")
    served.upload(wheel, token)
    status, body = served.get("/pypi/hashed/json", accept="application/json")
    assert status == 200, body
    (file,) = json.loads(body)["urls"]
    assert file["filename"] == wheel.filename
    sha256 = file["digests"]["sha256"]
    assert sha256 == wheel.sha256

    venv = sandbox.venv()

    def install(digest: str) -> subprocess.CompletedProcess[str]:
        requirements = sandbox.root / "requirements.txt"
        requirements.write_text(f"hashed==1.0 --hash=sha256:{digest}\n")
        return sandbox.run(
            "uv",
            "pip",
            "install",
            "--python",
            venv / "bin" / "python",
            "--index-url",
            served.simple_url,
            "--require-hashes",
            "-r",
            requirements,
        )

    wrong = install("0" * 64)
    assert wrong.returncode != 0, describe(wrong)
    assert "hash mismatch" in output(wrong).lower(), describe(wrong)

    right = install(sha256)
    assert right.returncode == 0, describe(right)
    imported = sandbox.python(venv, "import hashed; print(hashed.__version__)")
    assert imported.stdout.strip() == "1.0", describe(imported)
