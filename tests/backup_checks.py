"""What a restored server must do, checked the same way by every backup test: serve each
file the backup holds with its hash, not know what came after it, install with pip, and
verify against the origin's first root."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.conftest import LiveServer
from tests.installs import pip_install
from tests.trust.signed import run_verify

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def assert_restored_serves(
    server: LiveServer,
    files: Mapping[str, str],
    absent: Iterable[str],
    install: str,
    root: Path,
    work: Path,
) -> None:
    """``files``: project -> the sha256 of its one file; ``absent``: projects the restored
    index must not know; ``install``: a project pip installs from the restored server."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for project, sha256 in files.items():
            page = http.get(f"/simple/{project}/", headers=JSON)
            assert page.status_code == 200, f"{project}: {page.status_code}"
            [file] = page.json()["files"]
            body = http.get(urlsplit(file["url"]).path).content
            assert hashlib.sha256(body).hexdigest() == sha256, project
        for project in absent:
            assert http.get(f"/simple/{project}/").status_code == 404, project
    target = work / "installed"
    pip = pip_install("--index-url", f"{server.url}/simple/", install, target=target)
    assert pip.returncode == 0, pip.stderr
    assert (target / install.replace("-", "_") / "__init__.py").is_file()
    verify = run_verify(f"{server.url}/main/", "--root", str(root))
    assert verify.returncode == 0, verify.stdout + verify.stderr
