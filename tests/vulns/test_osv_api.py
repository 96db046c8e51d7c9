"""``/osv/v1/``: the OSV API subset clients use, answered from imported records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tests.vulns import records
from tests.vulns.conftest import Run
from tilsit.index.manage import create_index
from tilsit.instance import Instance
from tilsit.web.osv import MAX_QUERY_BYTES


@pytest.fixture
def imported(run: Run, client: AppClient, tmp_path: Path) -> AppClient:
    run("vuln", "import", str(records.write_zip(tmp_path / "all.zip", records.export())))
    return client


def _query(name: str, version: str | None = None) -> dict[str, object]:
    query: dict[str, object] = {"package": {"name": name, "ecosystem": "PyPI"}}
    if version is not None:
        query["version"] = version
    return query


def test_query_answers_the_records_that_affect_the_version(imported: AppClient) -> None:
    response = imported.post("/osv/v1/query", json=_query("Vuln_Pkg", "1.1"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    vulns = response.json()["vulns"]
    assert [v["id"] for v in vulns] == [records.GHSA, records.PYSEC]
    assert vulns[0] == records.ghsa()  # the record as imported
    assert imported.post("/osv/v1/query", json=_query("vuln-pkg", "1.2")).json() == {
        "vulns": [records.ghsa()]
    }
    # osv.dev's answer for "none known" is an empty object.
    assert imported.post("/osv/v1/query", json=_query("vuln-pkg", "1.4")).json() == {}
    assert imported.post("/osv/v1/query", json=_query("unknown-pkg", "1.0")).json() == {}
    every = imported.post("/osv/v1/query", json=_query("vuln-pkg")).json()
    assert [v["id"] for v in every["vulns"]] == [records.GHSA, records.PYSEC]
    by_purl = {"package": {"purl": "pkg:pypi/evil-pkg@0.1"}}
    assert [v["id"] for v in imported.post("/osv/v1/query", json=by_purl).json()["vulns"]] == [
        records.MALWARE
    ]


def test_querybatch_answers_ids_and_modified_in_order(imported: AppClient) -> None:
    body = {
        "queries": [
            _query("vuln-pkg", "1.0"),
            _query("clean-pkg", "1.0"),
            _query("other-pkg", "2.0.1"),
        ]
    }
    response = imported.post("/osv/v1/querybatch", json=body)
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {"vulns": [{"id": records.PYSEC, "modified": "2024-03-01T10:00:00.123456Z"}]},
            {},
            {"vulns": [{"id": records.LISTED, "modified": "2023-11-01T00:00:00Z"}]},
        ]
    }


def test_vulns_serves_the_stored_record(imported: AppClient) -> None:
    response = imported.get(f"/osv/v1/vulns/{records.MALWARE}")
    assert response.status_code == 200 and response.json() == records.malware()
    missing = imported.get(f"/osv/v1/vulns/{records.WITHDRAWN}")  # withdrawn: not stored
    assert missing.status_code == 404
    assert f"no imported OSV record has the id '{records.WITHDRAWN}'" in missing.text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "the body is not JSON"),
        (b"[]", "the query must be a JSON object"),
        (b'{"version": "1.0"}', 'the query needs a "package" object'),
        (json.dumps(_query("x", "1")).replace("PyPI", "npm").encode(), "PyPI ecosystem only"),
        (b'{"commit": "6879efc2c1596d11a6a6ad296f80063b558d5e0f"}', "queries by commit"),
        (json.dumps(_query("not a name!")).encode(), "is not a PyPI project name"),
        (json.dumps({"package": {"purl": "pkg:npm/x@1"}}).encode(), "pkg:pypi/"),
    ],
)
def test_a_bad_query_is_a_400_with_the_reason(
    imported: AppClient, body: bytes, reason: str
) -> None:
    response = imported.post("/osv/v1/query", content=body)
    assert response.status_code == 400 and reason in response.text, response.text
    batch = imported.post("/osv/v1/querybatch", content=b'{"queries": [' + body + b"]}")
    if body != b"{":
        assert batch.status_code == 400 and "query 0" in batch.text
        assert reason.replace("the query", "query 0") in batch.text


def test_batch_size_body_size_and_methods_are_bounded(imported: AppClient) -> None:
    many = {"queries": [_query("x", "1")] * 1001}
    response = imported.post("/osv/v1/querybatch", json=many)
    assert response.status_code == 400 and "at most 1000 queries" in response.text
    big = b'{"queries": [' + b" " * MAX_QUERY_BYTES + b"]}"
    assert imported.post("/osv/v1/query", content=big).status_code == 413

    def chunked() -> object:
        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(20):
                yield b" " * (MAX_QUERY_BYTES // 10)

        return chunks()

    assert imported.post("/osv/v1/querybatch", content=chunked()).status_code == 413
    assert imported.get("/osv/v1/query").status_code == 405
    assert imported.post(f"/osv/v1/vulns/{records.GHSA}").status_code == 405
    assert imported.get("/osv/v1/nothing").status_code == 404


def test_an_index_named_osv_keeps_its_paths(
    imported: AppClient, instance: Instance, token: str
) -> None:
    with instance.db.write() as session:
        create_index(session, "osv")
    response = upload(imported, make_wheel("vuln-pkg", "1.0"), token, "/osv/legacy/")
    assert response.status_code == 200, response.text
    assert imported.get("/osv/simple/vuln-pkg/").status_code == 200
    doc = imported.get("/osv/pypi/vuln-pkg/1.0/json").json()
    assert [v["id"] for v in doc["vulnerabilities"]] == [records.PYSEC]
    assert imported.post("/osv/v1/query", json=_query("vuln-pkg", "1.0")).status_code == 200
