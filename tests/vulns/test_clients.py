"""Real audit clients against a live tilsit with imported OSV data, and no internet:
``pip-audit -s osv --osv-url`` and ``uv audit --service-url``.

Each runs in the scrubbed sandbox of :mod:`tests.clients.tools` (no config, a dead proxy
for everything but 127.0.0.1), so a client that tried osv.dev or pypi.org would fail, and
the server's access log shows that the answers came from tilsit's /osv/v1/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests import postgres
from tests.builders import make_wheel
from tests.clients.tools import Sandbox, describe
from tests.conftest import LiveServer, create_database, start_server, stop
from tests.uploads import upload
from tests.vulns import records
from tilsit.config import load_settings

pytestmark = pytest.mark.clients
UPLOADS = [("vuln-pkg", "1.0"), ("vuln-pkg", "1.2"), ("clean-pkg", "1.0"), ("evil-pkg", "0.1")]


@dataclass
class Server:
    live: LiveServer
    log: Path

    def osv_requests(self) -> list[str]:
        return re.findall(r'"(POST|GET) (/osv/v1/\S+) HTTP', self.log.read_text())


@pytest.fixture(scope="module")
def server(postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("osv-clients")
    settings = load_settings(
        overrides={"data": root / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    port = postgres.free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    live = start_server(settings, log, env={"TILSIT_BASE_URL": base_url}, port=port)
    try:
        token = live.token()
        with httpx.Client(base_url=live.url, timeout=30) as client:
            for name, version in UPLOADS:
                response = upload(client, make_wheel(name, version), token)
                assert response.status_code == 200, response.text
        export = records.write_zip(root / "all.zip", records.export())
        with pytest.MonkeyPatch.context() as env:
            env.setenv("TILSIT_BASE_URL", base_url)
            live.cli("vuln", "import", str(export))
        yield Server(live, log)
    finally:
        stop(live)


def test_pip_audit_reports_from_tilsit(server: Server, tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("vuln-pkg==1.0\nother-pkg==2.0.1\nclean-pkg==1.0\n")
    result = sandbox.run(
        "pip-audit",
        "-r",
        requirements,
        "--no-deps",
        "--disable-pip",
        "-s",
        "osv",
        "--osv-url",
        f"{server.live.url}/osv/v1/query",
        "--cache-dir",
        tmp_path / "audit-cache",
        "--progress-spinner",
        "off",
        "-f",
        "json",
        env={"PIP_NO_INDEX": "1"},
    )
    assert result.returncode == 1, describe(result)  # 1: vulnerabilities found
    report = {d["name"]: d for d in json.loads(result.stdout)["dependencies"]}
    (found,) = report["vuln-pkg"]["vulns"]
    assert found["id"] == records.PYSEC
    assert set(found["aliases"]) == {"CVE-2024-24680", "GHSA-xxww-4h6c-7x2v"}  # a set to it
    assert [v["id"] for v in report["other-pkg"]["vulns"]] == [records.LISTED]
    assert report["clean-pkg"]["vulns"] == []
    assert [p for m, p in server.osv_requests() if m == "POST"].count("/osv/v1/query") >= 3


def test_uv_audit_reports_from_tilsit(server: Server, tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    project = tmp_path / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        "[project]\n"
        'name = "app"\n'
        'version = "0.1"\n'
        'requires-python = ">=3.8"\n'
        'dependencies = ["vuln-pkg==1.2", "clean-pkg==1.0"]\n'
    )
    index = ("--default-index", f"{server.live.url}/simple/")
    locked = sandbox.run("uv", "lock", *index, cwd=project)
    assert locked.returncode == 0, describe(locked)
    before = len(server.osv_requests())
    result = sandbox.run(
        "uv",
        "audit",
        "--frozen",
        *index,
        "--service-url",
        f"{server.live.url}/osv/",
        "--output-format",
        "json",
        cwd=project,
    )
    assert result.returncode == 1, describe(result)
    report = json.loads(result.stdout)
    assert report["summary"]["audited_packages"] == 2, describe(result)
    # 1.2 is affected by GHSA (1.1 to 1.3) and fixed for PYSEC (before 1.2).
    found = [(v["dependency"], v["id"]) for v in report["vulnerabilities"]]
    assert found == [({"name": "vuln-pkg", "version": "1.2"}, records.GHSA)], describe(result)
    assert report["vulnerabilities"][0]["summary"] == records.ghsa()["summary"]
    asked = server.osv_requests()[before:]
    assert ("POST", "/osv/v1/querybatch") in asked
    assert ("GET", f"/osv/v1/vulns/{records.GHSA}") in asked


def test_uv_sync_malware_check_asks_tilsit(server: Server, tmp_path: Path) -> None:
    """UV_MALWARE_CHECK_URL: uv checks the packages its lock says come from PyPI (the
    OSV data is about PyPI's), so the lock made against tilsit is rewritten to name PyPI
    as their source; uv then asks tilsit and refuses to install before any download (a
    download would go to the dead proxy and fail otherwise)."""
    sandbox = Sandbox(tmp_path)
    project = tmp_path / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        "[project]\n"
        'name = "app"\n'
        'version = "0.1"\n'
        'requires-python = ">=3.8"\n'
        'dependencies = ["evil-pkg==0.1", "clean-pkg==1.0"]\n'
    )
    locked = sandbox.run("uv", "lock", "--default-index", f"{server.live.url}/simple/", cwd=project)
    assert locked.returncode == 0, describe(locked)
    lock = project / "uv.lock"
    lock.write_text(
        lock.read_text()
        .replace(f"{server.live.url}/simple/", "https://pypi.org/simple")
        .replace(f"{server.live.url}/packages/", "https://files.pythonhosted.org/packages/")
    )
    before = len(server.osv_requests())
    result = sandbox.run(
        "uv",
        "sync",
        "--frozen",
        env={"UV_MALWARE_CHECK_URL": f"{server.live.url}/osv/", "UV_MALWARE_CHECK": "1"},
        cwd=project,
    )
    assert result.returncode != 0, describe(result)
    assert "Malware detected" in result.stderr and records.MALWARE in result.stderr
    assert ("POST", "/osv/v1/querybatch") in server.osv_requests()[before:]


@pytest.mark.nginx
def test_behind_nginx(server: Server, tmp_path: Path) -> None:
    """With the shipped nginx config in front, /osv/v1/ reaches tilsit (POST and GET) and
    the tree's legacy JSON, served by nginx, carries the vulnerabilities."""
    from tests.conftest import stop_process
    from tests.readpath.conftest import need_nginx, start_nginx

    need_nginx()
    process, url = start_nginx(server.live.settings.tree_dir, server.live.url, tmp_path / "nginx")
    try:
        query = {"package": {"name": "vuln-pkg", "ecosystem": "PyPI"}, "version": "1.0"}
        answer = httpx.post(f"{url}/osv/v1/query", json=query, timeout=30)
        assert answer.status_code == 200 and answer.json()["vulns"][0]["id"] == records.PYSEC
        assert httpx.get(f"{url}/osv/v1/vulns/{records.MALWARE}").json() == records.malware()
        doc = httpx.get(f"{url}/pypi/vuln-pkg/1.0/json").json()
        assert [v["id"] for v in doc["vulnerabilities"]] == [records.PYSEC]
        requirements = tmp_path / "requirements.txt"
        requirements.write_text("vuln-pkg==1.0\n")
        result = Sandbox(tmp_path).run(
            "pip-audit",
            "-r",
            requirements,
            "--no-deps",
            "--disable-pip",
            "-s",
            "osv",
            "--osv-url",
            f"{url}/osv/v1/query",
            "--cache-dir",
            tmp_path / "audit-cache",
            "--progress-spinner",
            "off",
            "-f",
            "json",
        )
        (dependency,) = json.loads(result.stdout)["dependencies"]
        assert [v["id"] for v in dependency["vulns"]] == [records.PYSEC], describe(result)
    finally:
        stop_process(process)
