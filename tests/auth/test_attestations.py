"""PEP 740 attestations: not verified or served yet, so an upload that carries them is refused
with a 400 that says so, before anything is stored (storing the file without them would
publish it as if it had none)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.builders import Dist, make_wheel
from tests.clients.tools import Sandbox, describe, output
from tests.conftest import AppClient, LiveServer
from tests.uploads import upload
from tilsit.config import Settings
from tilsit.db.engine import Database
from tilsit.db.models import ProjectRow
from tilsit.instance import Instance

REFUSAL = "Attestations (PEP 740) are not verified or served by this index yet"
# The shape twine sends (one JSON object per attestation file); its contents are garbage.
GARBAGE = [{"version": 1, "verification_material": {}, "envelope": {"signature": "AAAA"}}]


def _nothing_stored(settings: Settings, dist: Dist) -> None:
    blobs = settings.blob_dir
    assert not any(dist.sha256 in str(p) for p in blobs.rglob("*")), "the blob was stored"
    db = Database(settings.db_url)
    try:
        with db.read() as session:
            assert session.scalars(select(ProjectRow.normalized)).all() == []
    finally:
        db.dispose()


def test_an_upload_form_with_attestations_is_refused(
    instance: Instance, client: AppClient, token: str
) -> None:
    dist = make_wheel("attested", "1.0")
    response = upload(client, dist, token, attestations=json.dumps(GARBAGE))
    assert response.status_code == 400, response.text
    assert REFUSAL in response.text
    _nothing_stored(instance.settings, dist)
    # Without the field the same upload goes through.
    assert upload(client, dist, token).status_code == 200


@pytest.mark.clients
def test_twine_upload_with_attestations_is_refused(live_server: LiveServer, tmp_path: Path) -> None:
    live = live_server
    sandbox = Sandbox(tmp_path / "sandbox")
    directory = tmp_path / "dist"
    directory.mkdir()
    dist = make_wheel("attested", "1.0")
    path = dist.write(directory)
    # twine attaches <dist>.<name>.attestation files given beside the dist.
    attestation = directory / f"{dist.filename}.publish.attestation"
    attestation.write_text(json.dumps(GARBAGE[0]))
    result = sandbox.run(
        "twine",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--attestations",
        "--repository-url",
        f"{live.url}/legacy/",
        "-u",
        "__token__",
        "-p",
        live.token("alice"),
        path,
        attestation,
    )
    text = " ".join(output(result).split())  # twine wraps its output
    assert result.returncode != 0, describe(result)
    assert "400" in text and REFUSAL in text, describe(result)
    assert httpx.get(f"{live.url}/simple/attested/", timeout=30).status_code == 404
    _nothing_stored(live.settings, dist)
