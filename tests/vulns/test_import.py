"""``tilsit vuln import``: the PyPI export (all.zip) or one record, all or nothing, incremental
by ``modified``, recorded in the audit log, and followed by the pages of the projects it names."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tests.vulns import records
from tests.vulns.conftest import Run
from tilsit.db.models import (
    AuditEventRow,
    IndexRow,
    JournalRow,
    VulnImportRow,
    VulnPackageRow,
    VulnRow,
)
from tilsit.index.manage import create_index
from tilsit.instance import Instance

UPLOADS = [("vuln-pkg", "1.0"), ("vuln-pkg", "1.2"), ("other-pkg", "2.0"), ("evil-pkg", "0.1")]


@pytest.fixture
def uploaded(client: AppClient, token: str, instance: Instance) -> AppClient:
    """The projects the records name, in the default index; vuln-pkg in a second index too."""
    with instance.db.write() as session:
        create_index(session, "team")
    for name, version in UPLOADS:
        assert upload(client, make_wheel(name, version), token).status_code == 200
    response = upload(client, make_wheel("vuln-pkg", "1.1"), token, "/team/legacy/")
    assert response.status_code == 200, response.text
    return client


def _vulns(client: AppClient, path: str) -> list[str] | None:
    doc = client.get(path).json()
    return None if "vulnerabilities" not in doc else [v["id"] for v in doc["vulnerabilities"]]


def _state(instance: Instance) -> dict[str, Any]:
    """Everything an import may change."""
    with instance.db.read() as session:
        return {
            "vulns": sorted(
                (r.id, r.modified.isoformat()) for r in session.scalars(select(VulnRow))
            ),
            "packages": session.scalar(select(func.count()).select_from(VulnPackageRow)),
            "imports": session.scalar(select(func.count()).select_from(VulnImportRow)),
            "audit": session.scalar(select(func.count()).select_from(AuditEventRow)),
            "journal": session.scalar(select(func.max(JournalRow.serial))),
        }


def test_import_stores_pypi_records_and_re_renders_what_they_name(
    run: Run, uploaded: AppClient, instance: Instance, tmp_path: Path
) -> None:
    client = uploaded
    assert _vulns(client, "/pypi/vuln-pkg/1.0/json") is None  # before any import: no claim
    export = records.write_zip(tmp_path / "all.zip", records.export())
    output = run("vuln", "import", str(export)).output
    sha256 = hashlib.sha256(export.read_bytes()).hexdigest()
    assert f"(sha256 {sha256}): 5 records, 4 new, 0 updated, 0 withdrawn" in output
    assert "0 unchanged, 1 ignored; 4 project pages re-rendered" in output

    # PyPI's shape, per release, from the records that affect that version.
    assert _vulns(client, "/pypi/vuln-pkg/1.0/json") == [records.PYSEC]
    assert _vulns(client, "/pypi/vuln-pkg/1.2/json") == [records.GHSA]
    assert _vulns(client, "/pypi/vuln-pkg/json") == [records.GHSA]  # the latest, 1.2
    assert _vulns(client, "/team/pypi/vuln-pkg/1.1/json") == [records.GHSA, records.PYSEC]
    assert _vulns(client, "/pypi/other-pkg/2.0/json") == [records.LISTED]
    assert _vulns(client, "/pypi/evil-pkg/0.1/json") == [records.MALWARE]
    (entry,) = client.get("/pypi/vuln-pkg/1.0/json").json()["vulnerabilities"]
    assert entry == {
        "aliases": ["CVE-2024-24680", "GHSA-xxww-4h6c-7x2v"],
        "details": records.pysec()["details"],
        "fixed_in": ["1.2"],
        "id": records.PYSEC,
        "link": f"/osv/v1/vulns/{records.PYSEC}",
        "source": "osv",
        "summary": "",
        "withdrawn": None,
    }

    with instance.db.read() as session:
        stored = {r.id: r for r in session.scalars(select(VulnRow))}
        assert set(stored) == {records.PYSEC, records.GHSA, records.LISTED, records.MALWARE}
        assert stored[records.MALWARE].malicious and not stored[records.GHSA].malicious
        assert stored[records.GHSA].record == records.ghsa()  # kept whole, for /osv/v1/vulns/
        rows = session.execute(
            select(IndexRow.name, JournalRow.project, JournalRow.detail)
            .join(IndexRow, IndexRow.id == JournalRow.index_id)
            .where(JournalRow.action == "vulns")
        ).all()
        assert sorted((i, p, d["ids"]) for i, p, d in rows) == [
            ("main", "evil-pkg", [records.MALWARE]),
            ("main", "other-pkg", [records.LISTED]),
            ("main", "vuln-pkg", [records.GHSA, records.PYSEC]),
            ("team", "vuln-pkg", [records.GHSA, records.PYSEC]),
        ]
        (event,) = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "vuln.imported")
        )
        assert event.actor == "cli" and event.detail["sha256"] == sha256
        (imported,) = session.scalars(select(VulnImportRow))
        assert (imported.sha256, imported.records, imported.changed) == (sha256, 5, 4)


def test_reimport_writes_nothing_and_a_newer_record_replaces(
    run: Run, uploaded: AppClient, instance: Instance, tmp_path: Path
) -> None:
    client = uploaded
    run("vuln", "import", str(records.write_zip(tmp_path / "all.zip", records.export())))
    before = _state(instance)
    output = run("vuln", "import", str(tmp_path / "all.zip")).output
    assert "0 new, 0 updated, 0 withdrawn, 4 unchanged, 1 ignored; 0 project" in output
    after = _state(instance)
    assert after["journal"] == before["journal"]  # nothing re-rendered
    assert after["imports"] == before["imports"] + 1  # but the import is recorded

    # The next export: GHSA widened (newer), PYSEC withdrawn, LISTED older than stored.
    widened = records.newer(records.ghsa(), "2024-07-01T00:00:00Z")
    widened["affected"][0]["ranges"][0]["events"] = [{"introduced": "0.5"}, {"fixed": "1.3"}]
    gone = records.newer(records.pysec(), "2024-07-02T00:00:00Z", withdrawn="2024-07-02T00:00:00Z")
    stale = records.newer(records.listed(), "2020-01-01T00:00:00Z", details="older text")
    export = records.write_zip(tmp_path / "next.zip", [widened, gone, stale, records.malware()])
    output = run("vuln", "import", str(export)).output
    assert "1 new" not in output and "0 new, 1 updated, 1 withdrawn, 2 unchanged" in output
    assert _vulns(client, "/pypi/vuln-pkg/1.0/json") == [records.GHSA]
    assert _vulns(client, "/team/pypi/vuln-pkg/1.1/json") == [records.GHSA]
    assert client.get(f"/osv/v1/vulns/{records.PYSEC}").status_code == 404
    with instance.db.read() as session:
        assert session.get(VulnRow, records.PYSEC) is None
        assert session.get(VulnRow, records.LISTED).details == records.listed()["details"]
        packages = session.scalars(
            select(VulnPackageRow).where(VulnPackageRow.vuln_id == records.GHSA)
        ).all()
        assert [p.fixed_in for p in packages] == [["1.3"]]


def test_a_single_record_file(run: Run, uploaded: AppClient, tmp_path: Path) -> None:
    path = records.write_record(tmp_path / f"{records.GHSA}.json", records.ghsa())
    assert "1 records, 1 new" in run("vuln", "import", str(path)).output
    assert _vulns(uploaded, "/pypi/vuln-pkg/1.2/json") == [records.GHSA]
    assert _vulns(uploaded, "/pypi/vuln-pkg/1.0/json") == []  # known: none for 1.0


def _bad_record() -> dict[str, Any]:
    record = records.listed()
    record["affected"][0]["ranges"] = [{"type": "ECOSYSTEM", "events": [{"fixed": "2.1"}]}]
    return record


def _renamed_in_central_directory(data: bytes) -> bytes:
    """The last member renamed in the central directory only: the headers disagree."""
    name = f"{records.MALWARE}.json".encode()
    at = data.rfind(name)
    return data[:at] + name.replace(b"MAL-", b"MAX-") + data[at + len(name) :]


def _zip_bytes(tmp_path: Path) -> bytes:
    return records.write_zip(tmp_path / "good.zip", records.export()).read_bytes()


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        (
            "bad-record.zip",
            lambda tmp: records.write_zip(tmp / "x", [records.ghsa(), _bad_record()]).read_bytes(),
            f"{records.LISTED}.json: affected[0].ranges[0]: an ECOSYSTEM range needs an"
            " 'introduced' event; nothing was imported",
        ),
        (
            "truncated.zip",
            lambda tmp: _zip_bytes(tmp)[:-40],
            "not a readable ZIP archive of OSV records",
        ),
        (
            "corrupt.zip",
            lambda tmp: _renamed_in_central_directory(_zip_bytes(tmp)),
            "not a readable ZIP archive of OSV records",
        ),
        (
            "stray.zip",
            lambda tmp: records.write_zip(tmp / "x", [records.ghsa()], README=b"hi").read_bytes(),
            "member 'README' is not an OSV record",
        ),
        (
            "twice.zip",
            lambda tmp: records.write_zip(
                tmp / "x", [records.ghsa()], **{"copy.json": json.dumps(records.ghsa()).encode()}
            ).read_bytes(),
            f"copy.json and {records.GHSA}.json are both record {records.GHSA}",
        ),
        (
            "huge.zip",
            lambda tmp: records.write_zip(
                tmp / "x", [], **{"BIG-1.json": b'{"id": "BIG-1", "details": "' + b"a" * 5_000_000}
            ).read_bytes(),
            "declares 4.77 MiB; this index reads at most 4 MiB per member",
        ),
        ("notes.txt", lambda tmp: b"not osv\n", "neither a ZIP archive of OSV records"),
        ("record.json", lambda tmp: b'{"id": "X-1"}', "record.json (X-1): modified: is required"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    run: Run,
    uploaded: AppClient,
    instance: Instance,
    tmp_path: Path,
    name: str,
    make: Any,
    message: str,
) -> None:
    run("vuln", "import", str(records.write_zip(tmp_path / "all.zip", records.export())))
    before = _state(instance)
    path = tmp_path / name
    path.write_bytes(make(tmp_path))
    output = run("vuln", "import", str(path), code=1).output
    assert output.startswith(f"error: {path}: ") and message in output, output
    assert output.count("\n") == 1 and "Traceback" not in output
    assert _state(instance) == before


def test_a_missing_file_is_named(run: Run, instance: Instance, tmp_path: Path) -> None:
    output = run("vuln", "import", str(tmp_path / "nope.zip"), code=1).output
    assert (
        output
        == f"error: {tmp_path / 'nope.zip'}: cannot be read (No such file or directory); nothing was imported\n"
    )


def test_a_zip_read_by_the_hardened_reader_only(tmp_path: Path) -> None:
    # A prefix before the archive (a polyglot) is refused by tilsit's reader, which
    # zipfile would accept: the import reads what every tool reads alike.
    from tilsit.index.vulns import InvalidExport, scan_export

    good = records.write_zip(tmp_path / "good.zip", [records.ghsa()])
    prefixed = tmp_path / "prefixed.zip"
    prefixed.write_bytes(b"#!/bin/sh\n" + good.read_bytes())
    assert zipfile.ZipFile(prefixed).namelist() == [f"{records.GHSA}.json"]
    with pytest.raises(InvalidExport, match="not a readable ZIP archive"):
        scan_export(prefixed)
