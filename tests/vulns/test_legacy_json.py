"""Legacy JSON ``vulnerabilities`` (PyPI's shape) from imported OSV data, on every index kind:
absent before any import (an empty list would claim "none known"), then per release."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import postgres
from tests.builders import make_wheel
from tests.conftest import create_database, start_server, stop
from tests.uploads import upload
from tests.upstream.conftest import downstream, make_mirror, sync
from tests.upstream.static import StaticServer, StaticTree
from tests.vulns import records
from tilsit.config import load_settings
from tilsit.index.vulns import import_osv


def test_a_hosted_index_on_a_live_server(postgres_base: str | None, tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"data": tmp_path / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    port = postgres.free_port()
    base_url = f"http://127.0.0.1:{port}"
    live = start_server(
        settings, tmp_path / "server.log", env={"TILSIT_BASE_URL": base_url}, port=port
    )
    try:
        token = live.token()
        with httpx.Client(base_url=live.url, timeout=30) as client:
            for version in ("1.0", "1.1", "1.2"):
                response = upload(client, make_wheel("vuln-pkg", version), token)
                assert response.status_code == 200, response.text
            before = client.get("/pypi/vuln-pkg/1.0/json").json()
            assert "vulnerabilities" not in before
            assert "vulnerabilities" not in client.get("/pypi/vuln-pkg/json").json()

            export = records.write_zip(tmp_path / "all.zip", records.export())
            with pytest.MonkeyPatch.context() as env:
                env.setenv("TILSIT_BASE_URL", base_url)
                live.cli("vuln", "import", str(export))

            def ids(path: str) -> list[str]:
                return [v["id"] for v in client.get(path).json()["vulnerabilities"]]

            assert ids("/pypi/vuln-pkg/1.0/json") == [records.PYSEC]
            assert ids("/pypi/vuln-pkg/1.1/json") == [records.GHSA, records.PYSEC]
            assert ids("/pypi/vuln-pkg/1.2/json") == [records.GHSA]
            assert ids("/pypi/vuln-pkg/json") == [records.GHSA]  # info.version, 1.2
            # Assembled from parts, the project's JSON is still what encoding it whole gives.
            raw = client.get("/pypi/vuln-pkg/json").content
            assert raw == json.dumps(json.loads(raw), ensure_ascii=False, sort_keys=True).encode()
            (entry,) = client.get("/pypi/vuln-pkg/1.2/json").json()["vulnerabilities"]
            assert entry["link"] == f"{base_url}/osv/v1/vulns/{records.GHSA}"
            assert entry["summary"] == records.ghsa()["summary"]
            assert entry["fixed_in"] == [] and entry["withdrawn"] is None
            assert httpx.get(entry["link"]).json() == records.ghsa()  # the link resolves

            # Once an import exists, a project no record names says so: "[]".
            response = upload(client, make_wheel("clean-pkg", "1.0"), token)
            assert response.status_code == 200, response.text
            assert client.get("/pypi/clean-pkg/1.0/json").json()["vulnerabilities"] == []
            assert client.get("/pypi/clean-pkg/json").json()["vulnerabilities"] == []
    finally:
        stop(live)


@pytest.fixture
def static(tmp_path: Path) -> Iterator[tuple[StaticTree, StaticServer]]:
    tree = StaticTree(tmp_path / "static")
    tree.write()
    server = StaticServer(tree.root)
    yield tree, server
    server.stop()


def test_a_mirror_index_lists_them_too(
    static: tuple[StaticTree, StaticServer], postgres_base: str | None, tmp_path: Path
) -> None:
    tree, server = static
    tree.add("vuln-pkg", make_wheel("vuln-pkg", "1.0"))
    _settings, instance = downstream(tmp_path / "downstream", postgres_base)
    try:
        make_mirror(instance, f"{server.url}/simple/")
        assert sync(instance).ok
        page = instance.tree.read("mirror/pypi/vuln-pkg/1.0/json")
        assert page is not None and "vulnerabilities" not in json.loads(page)

        export = records.write_zip(tmp_path / "all.zip", records.export())
        with instance.db.write() as session:
            result = import_osv(session, export, actor="test")
        assert result.projects == 1  # the mirror's vuln-pkg
        instance.renderer.catch_up()
        page = instance.tree.read("mirror/pypi/vuln-pkg/1.0/json")
        assert page is not None
        assert [v["id"] for v in json.loads(page)["vulnerabilities"]] == [records.PYSEC]

        # A release the next sync brings is rendered with the data already imported.
        tree.add("vuln-pkg", make_wheel("vuln-pkg", "1.1"))
        assert sync(instance).ok
        page = instance.tree.read("mirror/pypi/vuln-pkg/1.1/json")
        assert page is not None
        ids = [v["id"] for v in json.loads(page)["vulnerabilities"]]
        assert ids == [records.GHSA, records.PYSEC]
    finally:
        instance.close()
