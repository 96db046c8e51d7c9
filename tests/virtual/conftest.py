"""In-process helpers of the virtual index tests: a hosted index ``internal`` and a
mirror ``mir`` whose projects are applied as a sync applies them, under a virtual
index ``all`` = internal, mir."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from tests.builders import Dist, make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.index.manage import create_index, get_index
from tilsit.index.upstream import UpstreamFile, UpstreamProject, apply_upstream_project
from tilsit.index.virtual import set_members
from tilsit.instance import Instance

WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def mirrored(instance: Instance, name: str, version: str) -> tuple[Dist, UpstreamFile]:
    wheel = make_wheel(name, version)
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode()
    instance.blobs.put_bytes(wheel.data)
    instance.blobs.put_bytes(metadata)
    return wheel, UpstreamFile(
        filename=wheel.filename,
        url=f"https://upstream.invalid/files/{wheel.filename}",
        sha256=wheel.sha256,
        size=len(wheel.data),
        upload_time=WHEN,
        metadata_sha256=hashlib.sha256(metadata).hexdigest(),
    )


def apply(instance: Instance, name: str, serial: int, *files: UpstreamFile) -> None:
    versions = sorted({f.filename.split("-")[1] for f in files})
    with instance.db.write() as session:
        apply_upstream_project(
            session,
            get_index(session, "mir"),
            UpstreamProject(name, serial, list(files), versions=versions),
            stored=set(instance.blobs),
        )
    instance.renderer.catch_up()


def page(instance: Instance, index: str, name: str) -> dict[str, object] | None:
    path = instance.settings.tree_dir / index / "simple" / name / "index.v1.json"
    if not path.exists():
        return None
    return json.loads(path.read_bytes())  # type: ignore[no-any-return]


def filenames(doc: dict[str, object] | None) -> list[str]:
    assert doc is not None
    files = doc["files"]
    assert isinstance(files, list)
    return sorted(f["filename"] for f in files)


@pytest.fixture
def stack(instance: Instance) -> Instance:
    with instance.db.write() as session:
        create_index(session, "internal")
        create_index(
            session, "mir", "mirror", options={"upstream": "https://upstream.invalid/simple/"}
        )
        virtual = create_index(session, "all", "virtual")
        set_members(session, virtual, ["internal", "mir"], actor="test")
    instance.renderer.catch_up()
    return instance


def post(client: AppClient, token: str, dist: Dist, index: str = "internal") -> None:
    response = upload(client, dist, token, f"/{index}/legacy/")
    assert response.status_code == 200, response.text
