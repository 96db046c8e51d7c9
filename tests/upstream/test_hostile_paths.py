"""Filenames from outside that the tree must not hold (issue 9, items 2, 8 and 17).

One live tilsit server for the module, and one
:class:`~tests.upstream.hostile.HostileServer` whose pages list filenames that
climb (``../../x.whl``), are absolute, spell a name with a KELVIN SIGN (which
packaging folds to ``k``), or are 270 characters long (no hashed link of them
fits in a file name). A mirror sync and a proxy skip each such file, name it and
the reason, and take the others; an upload of such a name is a 400 that changes
nothing. Each test adds its own index of the hostile server.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.builders import Dist, make_wheel
from tests.conftest import LiveServer, create_database, start_server, stop
from tests.uploads import upload
from tests.upstream.conftest import Notes
from tests.upstream.hostile import Answer, HostileServer, page, root
from tilsit.config import load_settings
from tilsit.db.models import FileRow, IndexRow, JournalRow
from tilsit.index.manage import create_index
from tilsit.instance import Instance, open_instance
from tilsit.store.tree import file_path
from tilsit.upstream.sync import sync_mirror

JSON = "application/vnd.pypi.simple.v1+json"
_DIRECT = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
KELVIN = "\u212a"
_names = itertools.count()


def long_wheel_name(project: str, length: int = 270) -> str:
    """A valid wheel filename of ``length`` characters: a long platform tag set."""
    head = f"{project.replace('-', '_')}-1.0-py3-none-"
    platforms, n = [], 0
    while len(head + ".".join(platforms) + ".whl") < length:
        platforms.append(f"p{n:03d}")
        n += 1
    name = head + ".".join(platforms)
    name = name[: length - len(".whl")] + ".whl"
    assert len(name) == length, len(name)
    return name


def hostile_names(project: str) -> list[str]:
    stem = project.replace("-", "_")
    return [
        f"../../{stem}-6.6-py3-none-any.whl",
        f"/etc/{stem}-6.6-py3-none-any.whl",
        f"..\\..\\{stem}-6.6-py3-none-any.whl",
        f"{stem}{KELVIN}-6.6-py3-none-any.whl",
        long_wheel_name(project),
    ]


@dataclass
class Rig:
    live: LiveServer
    instance: Instance
    hostile: HostileServer

    @property
    def tree(self) -> Path:
        return self.live.settings.tree_dir

    def index(self, kind: str) -> str:
        name = f"hp{kind[0]}{next(_names)}"
        with self.instance.db.write() as session:
            create_index(
                session,
                name,
                kind,
                actor="test",
                options={"upstream": f"{self.hostile.url}/simple/", "timeout": 10},
            )
        self.instance.renderer.catch_up()
        return name

    def serve(self, project: str, dist: Dist, filename: str | None = None) -> dict[str, Any]:
        """Serve ``dist``'s bytes and return its PEP 691 entry, listed as ``filename``."""
        path = f"/files/{project}/{hashlib.sha256(dist.data).hexdigest()}.whl"
        self.hostile.routes[path] = Answer(
            200, {"content-type": "application/octet-stream"}, dist.data
        )
        return {
            "filename": filename or dist.filename,
            "url": f"{self.hostile.url}{path}",
            "hashes": {"sha256": dist.sha256},
            "size": len(dist.data),
        }

    def files_of(self, index: str) -> set[str]:
        with self.instance.db.read() as session:
            return set(
                session.scalars(
                    select(FileRow.filename).join(IndexRow).where(IndexRow.name == index)
                )
            )

    def journal_end(self) -> int:
        with self.instance.db.read() as session:
            return int(session.scalar(select(func.max(JournalRow.serial))) or 0)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.live.url}{path}", headers={"Accept": JSON}, timeout=60)

    def nothing_named(self, marker: str) -> None:
        """No file of the tree (or outside it, next to it) carries ``marker`` in its name."""
        for where in (self.tree, self.tree.parent):
            assert not list(where.rglob(f"*{marker}*")), marker


@pytest.fixture(scope="module")
def rig(postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root_dir = tmp_path_factory.mktemp("hostile-paths")
    settings = load_settings(
        overrides={"data": root_dir / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    live = start_server(settings, root_dir / "server.log", env=_DIRECT)
    instance = open_instance(settings)
    hostile = HostileServer().start()
    try:
        yield Rig(live, instance, hostile)
    finally:
        hostile.stop()
        instance.close()
        stop(live)


def test_a_mirror_skips_hostile_filenames_and_names_and_takes_the_rest(rig: Rig) -> None:
    project = "hp-mirrored"
    good = make_wheel(project, "1.0")
    evil = make_wheel(project, "6.6", members={"hp_mirrored/evil.py": b"raise SystemExit\n"})
    names = hostile_names(project)
    files = [rig.serve(project, good)] + [rig.serve(project, evil, name) for name in names]
    rig.hostile.routes["/simple/"] = root(project, "../../main", f"hp-{KELVIN}elvin")
    rig.hostile.routes[f"/simple/{project}/"] = page(project, files)
    index = rig.index("mirror")
    notes = Notes()
    report = asyncio.run(
        sync_mirror(rig.instance, index, workers=2, attempts=1, backoff=0, reporter=notes)
    )
    # The sync goes on: the good file is mirrored, each refused one is named with why.
    assert report.failed == {}, report.summary()
    assert rig.files_of(index) == {good.filename}
    assert rig.instance.tree.read(file_path(good.sha256, good.filename)) == good.data
    for name in names:
        [line] = [
            line for line in notes.lines if line.startswith(f"note: {project}: skipped {name}:")
        ]
        assert "refused file name" in line, line
    assert any(KELVIN in line and "KELVIN SIGN" in line for line in notes.lines), notes.lines
    assert any("characters long, at most 180" in line for line in notes.lines), notes.lines
    # The root's names that are no project names are skipped and named too.
    assert any("root page: skipped '../../main'" in line for line in notes.lines), notes.lines
    assert any(f"root page: skipped 'hp-{KELVIN}elvin'" in line for line in notes.lines)
    assert not rig.instance.blobs.exists(evil.sha256)
    rig.nothing_named("6.6")
    rig.nothing_named(KELVIN)


def test_a_mirror_skips_versions_that_would_climb_out_of_the_release_directory(rig: Rig) -> None:
    # PEP 700 versions and a legacy file's version each become pypi/<project>/<version>/json.
    project = "hp-versioned"
    good = make_wheel(project, "1.0")
    legacy = make_wheel(project, "0.1", members={"hp_versioned/old.py": b"old = 1\n"})
    document = {
        "meta": {"api-version": "1.1", "_last-serial": 1},
        "name": project,
        "files": [
            rig.serve(project, good),
            rig.serve(project, legacy, "hp-versioned-..zip"),
        ],
        "versions": ["1.0", "../../../main/simple/requests", "." * 3, "9" * 65],
    }
    rig.hostile.routes["/simple/"] = root(project)
    rig.hostile.routes[f"/simple/{project}/"] = Answer(
        200, {"content-type": JSON}, json.dumps(document).encode()
    )
    index = rig.index("mirror")
    notes = Notes()
    report = asyncio.run(
        sync_mirror(rig.instance, index, workers=2, attempts=1, backoff=0, reporter=notes)
    )
    assert report.failed == {}, report.summary()
    assert rig.files_of(index) == {good.filename}
    refused = [line for line in notes.lines if "refused version" in line]
    assert len(refused) == 4, notes.lines
    assert any("../../../main/simple/requests" in line for line in refused)
    assert any("hp-versioned-..zip" in line for line in refused)
    legacy_dir = rig.tree / index / "pypi" / project
    assert sorted(p.name for p in legacy_dir.iterdir()) == ["1.0", "json"]
    assert not (rig.tree / "main" / "simple" / "requests" / "json").exists()
    health = rig.get("/_/health").json()
    assert not health.get("render_failures"), health


def test_a_proxy_page_with_a_270_character_filename_breaks_nothing(rig: Rig) -> None:
    project = "hp-proxied"
    good = make_wheel(project, "1.0")
    other = make_wheel("hp-neighbour", "1.0")
    long_name = long_wheel_name(project)
    rig.hostile.routes[f"/simple/{project}/"] = page(
        project, [rig.serve(project, good), rig.serve(project, good, long_name)]
    )
    rig.hostile.routes["/simple/hp-neighbour/"] = page("hp-neighbour", [rig.serve("n", other)])
    index = rig.index("proxy")
    # One anonymous GET: the page lists the good file only.
    response = rig.get(f"/{index}/simple/{project}/")
    assert response.status_code == 200, response.text
    assert [f["filename"] for f in json.loads(response.content)["files"]] == [good.filename]
    assert rig.files_of(index) == {good.filename}
    # Everything else still renders: another proxied project, an upload, the health.
    response = rig.get(f"/{index}/simple/hp-neighbour/")
    assert response.status_code == 200, response.text
    with httpx.Client(base_url=rig.live.url, timeout=60) as http:
        uploaded = upload(http, make_wheel("hp-hosted", "1.0"), rig.live.token())
    assert uploaded.status_code == 200, uploaded.text
    assert rig.get("/simple/hp-hosted/").status_code == 200
    health = rig.get("/_/health").json()
    assert health["status"] == "ok", health
    assert not health.get("render_failures"), health
    rig.nothing_named(long_name[:40] + "p0")


def test_a_proxy_takes_no_filename_from_a_hostile_url_segment(rig: Rig) -> None:
    # An anchor without text: the filename is the URL's last segment, percent-decoded.
    project = "hp-anchored"
    good = make_wheel(project, "1.0")
    evil = make_wheel(project, "6.6", members={"hp_anchored/evil.py": b"raise SystemExit\n"})
    anchors = [f'<a href="/files/good/{good.filename}#sha256={good.sha256}">{good.filename}</a>']
    for segment in (
        "..%2F..%2Fhp_anchored-6.6-py3-none-any.whl",
        "hp_anchored%E2%84%AA-6.6-py3-none-any.whl",  # the KELVIN SIGN, encoded
        "%2Fetc%2Fhp_anchored-6.6-py3-none-any.whl",
    ):
        rig.hostile.routes[f"/files/evil/{segment}"] = Answer(200, {}, evil.data)
        anchors.append(f'<a href="/files/evil/{segment}#sha256={evil.sha256}"></a>')
    rig.hostile.routes[f"/files/good/{good.filename}"] = Answer(200, {}, good.data)
    body = "<!DOCTYPE html><html><body>" + "<br/>".join(anchors) + "</body></html>"
    rig.hostile.routes[f"/simple/{project}/"] = Answer(
        200, {"content-type": "text/html"}, body.encode()
    )
    index = rig.index("proxy")
    response = rig.get(f"/{index}/simple/{project}/")
    assert response.status_code == 200, response.text
    assert [f["filename"] for f in json.loads(response.content)["files"]] == [good.filename]
    assert rig.files_of(index) == {good.filename}
    rig.nothing_named("6.6")


def test_an_upload_of_a_270_character_filename_is_refused_and_changes_nothing(rig: Rig) -> None:
    long_name = long_wheel_name("hp-long-upload")
    dist = make_wheel("hp-long-upload", "1.0", tag=long_name.removesuffix(".whl").split("-", 2)[2])
    assert dist.filename == long_name
    before = rig.journal_end()
    with httpx.Client(base_url=rig.live.url, timeout=60) as http:
        response = upload(http, dist, rig.live.token())
    assert response.status_code == 400, response.text
    assert "270 characters long, at most 180" in response.text
    assert rig.journal_end() == before
    assert not rig.instance.blobs.exists(dist.sha256)
    assert rig.get("/simple/hp-long-upload/").status_code == 404


def test_an_upload_whose_filename_folds_to_ascii_is_refused(rig: Rig) -> None:
    dist = make_wheel("hp-kelvin", "1.0")
    spelled = f"hp_{KELVIN}elvin-1.0-py3-none-any.whl"  # packaging reads it as hp-kelvin
    before = rig.journal_end()
    with httpx.Client(base_url=rig.live.url, timeout=60) as http:
        response = upload(http, dist, rig.live.token(), filename=spelled, name="hp-kelvin")
    assert response.status_code == 400, response.text
    assert "U+212A KELVIN SIGN" in response.text
    assert rig.journal_end() == before
    assert not rig.instance.blobs.exists(dist.sha256)
    assert rig.get("/simple/hp-kelvin/").status_code == 404
