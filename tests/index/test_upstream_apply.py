"""The mirror/proxy write path: one upstream page applied to an index."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from sqlalchemy import select

from tests.builders import make_wheel
from tilsit.db.models import FileRow, JournalRow
from tilsit.index.manage import create_index, get_index
from tilsit.index.upstream import (
    UpstreamFile,
    UpstreamProject,
    apply_upstream_project,
    remove_upstream_project,
)
from tilsit.instance import Instance

WHEN = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def upstream_file(
    instance: Instance, version: str, *, store: bool = True, **extra: object
) -> UpstreamFile:
    wheel = make_wheel("foo", version)
    metadata = f"Metadata-Version: 2.1\nName: foo\nVersion: {version}\n\n".encode()
    if store:
        instance.blobs.put_bytes(wheel.data)
        instance.blobs.put_bytes(metadata)
    return UpstreamFile(
        filename=wheel.filename,
        url=f"https://upstream.invalid/files/{wheel.filename}",
        sha256=wheel.sha256,
        size=len(wheel.data),
        upload_time=WHEN,
        metadata_sha256=hashlib.sha256(metadata).hexdigest(),
        **extra,  # type: ignore[arg-type]
    )


def page(instance: Instance) -> dict[str, object]:
    raw = (instance.settings.tree_dir / "up/simple/foo/index.v1.json").read_bytes()
    return json.loads(raw)  # type: ignore[no-any-return]


def apply(instance: Instance, project: UpstreamProject) -> int | None:
    stored = set(instance.blobs)
    with instance.db.write() as session:
        applied = apply_upstream_project(session, get_index(session, "up"), project, stored=stored)
    instance.renderer.catch_up()
    return applied.serial


def test_add_yank_remove_and_delete(instance: Instance) -> None:
    with instance.db.write() as session:
        create_index(
            session, "up", "mirror", options={"upstream": "https://upstream.invalid/simple/"}
        )
    one, two = upstream_file(instance, "1.0"), upstream_file(instance, "2.0")
    assert (
        apply(instance, UpstreamProject("Foo", 17, [one, two], versions=["1.0", "2.0"])) is not None
    )
    doc = page(instance)
    assert doc["meta"] == {"api-version": "1.4", "_last-serial": 17}  # the upstream's serial
    files = doc["files"]
    assert isinstance(files, list)
    assert [f["filename"] for f in files] == [one.filename, two.filename]
    assert files[0]["upload-time"] == "2024-01-02T03:04:05.678901Z"
    assert files[0]["core-metadata"] == {"sha256": one.metadata_sha256}
    # Unchanged upstream: nothing journaled.
    assert apply(instance, UpstreamProject("Foo", 17, [one, two], versions=["1.0", "2.0"])) is None
    # A file yanked upstream, another gone.
    yanked = upstream_file(instance, "1.0", yanked="broken")
    assert apply(instance, UpstreamProject("foo", 18, [yanked], versions=["1.0"])) is not None
    files = page(instance)["files"]
    assert isinstance(files, list)
    assert [(f["filename"], f["yanked"]) for f in files] == [(one.filename, "broken")]
    with instance.db.write() as session:
        assert remove_upstream_project(session, get_index(session, "up"), "foo") is not None
    instance.renderer.catch_up()
    assert not (instance.settings.tree_dir / "up/simple/foo/index.v1.json").exists()
    with instance.db.read() as session:
        actions = session.scalars(select(JournalRow.action).order_by(JournalRow.serial)).all()
    assert actions[-3:] == ["sync project", "sync project", "remove project"]


def test_uncached_files_are_listed_but_not_linked(instance: Instance) -> None:
    with instance.db.write() as session:
        create_index(
            session, "up", "proxy", options={"upstream": "https://upstream.invalid/simple/"}
        )
    lazy = upstream_file(instance, "1.0", store=False)
    apply(instance, UpstreamProject("foo", None, [lazy]))
    files = page(instance)["files"]
    assert isinstance(files, list)
    assert [f["filename"] for f in files] == [lazy.filename]
    path = instance.settings.tree_dir / files[0]["url"].lstrip("/")
    assert not path.exists() and not path.with_name(path.name + ".metadata").exists()
    with instance.db.read() as session:
        row = session.scalars(select(FileRow)).one()
        assert (row.cached, row.source_url) == (False, lazy.url)
