"""Large project lists are coalesced: rendered once per interval, never inside an upload.

A list shows the serial it was built at, so what a reader sees is exact for it; a
list a stopped process left due is brought up to date when a server starts; a
clean stop leaves no list behind the journal.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from tests.builders import make_wheel
from tests.conftest import AppClient, start_server, stop
from tests.uploads import upload
from tilsit.db.models import JournalRow
from tilsit.instance import Instance, open_instance
from tilsit.trust.repository import IndexRepository

LIST = "main/simple/index.v1.json"


def _list(instance: Instance) -> tuple[int, list[str]]:
    document = json.loads((instance.settings.tree_dir / LIST).read_bytes())
    return document["meta"]["_last-serial"], [p["name"] for p in document["projects"]]


def _journal_end(instance: Instance) -> int:
    with instance.db.read() as session:
        return int(session.scalar(select(func.max(JournalRow.serial))) or 0)


def _signed(instance: Instance, target: str) -> str:
    signing = instance.signing
    repo = IndexRepository(instance.tree, "main", signing.keys, signing.settings)
    return repo.targets()[target].hashes["sha256"]


def test_a_coalesced_list_waits_for_the_pass_and_then_is_exact_and_signed(
    client: AppClient, token: str, instance: Instance
) -> None:
    assert upload(client, make_wheel("first", "1.0"), token).status_code == 200
    assert _list(instance)[1] == ["first"]  # a small list: rendered in the upload
    instance.renderer.coalesce_from = 0  # as serve does for a large list
    try:
        assert upload(client, make_wheel("second", "1.0"), token).status_code == 200
        # The project's own page is out; the list is due, not rendered by the upload.
        assert client.get("/simple/second/").status_code == 200
        serial, names = _list(instance)
        assert names == ["first"] and serial < _journal_end(instance)
        assert instance.renderer.lists_due()
        assert instance.renderer.render_due_lists() == 1
    finally:
        instance.renderer.coalesce_from = None
    serial, names = _list(instance)
    assert names == ["first", "second"]
    assert serial == _journal_end(instance)
    data = (instance.settings.tree_dir / LIST).read_bytes()
    assert _signed(instance, "simple/index.v1.json") == hashlib.sha256(data).hexdigest()
    assert not instance.renderer.lists_due()


def test_a_list_left_due_is_rendered_when_the_server_starts(
    client: AppClient, token: str, instance: Instance, tmp_path: Path
) -> None:
    assert upload(client, make_wheel("first", "1.0"), token).status_code == 200
    instance.renderer.coalesce_from = 0
    assert upload(client, make_wheel("second", "1.0"), token).status_code == 200
    # The process "stops" here, with the list due: a new one knows nothing of it.
    assert _list(instance)[1] == ["first"]
    server = start_server(instance.settings, tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            deadline = time.monotonic() + 30
            while "second" not in http.get("/simple/?format=json").text:
                assert time.monotonic() < deadline, "the list was not brought up to date"
                time.sleep(0.1)
    finally:
        stop(server)
    assert _list(instance) == (_journal_end(instance), ["first", "second"])


def test_a_starting_server_rebuilds_only_the_lists_left_behind_their_index(
    client: AppClient, token: str, instance: Instance
) -> None:
    """At 100,000 projects a list takes a second to build: a start must not spend it
    beside the first uploads when the list on disk already shows its index's serial."""
    renderer = instance.renderer
    assert upload(client, make_wheel("first", "1.0"), token).status_code == 200
    assert _list(instance)[0] == _journal_end(instance)
    renderer.mark_all_lists_due()
    assert not renderer.lists_due(), "a current list was marked for rebuilding"
    renderer.coalesce_from = 0
    assert upload(client, make_wheel("second", "1.0"), token).status_code == 200
    renderer.coalesce_from = None
    with renderer._due_lock:
        renderer._due.clear()  # as a new process knows nothing of what was due
    renderer.mark_all_lists_due()
    assert renderer.lists_due()
    renderer.render_due_lists()
    assert _list(instance) == (_journal_end(instance), ["first", "second"])


def test_a_coalesced_list_is_written_to_disk_before_it_takes_the_render_lock(
    client: AppClient, token: str, instance: Instance
) -> None:
    """At 100,000 projects the list is megabytes: an upload waiting for the lock must
    wait for its renames and TUF round, not for writing and fsyncing it."""
    renderer = instance.renderer
    assert upload(client, make_wheel("first", "1.0"), token).status_code == 200
    renderer.coalesce_from = 0
    assert upload(client, make_wheel("second", "1.0"), token).status_code == 200
    renderer.coalesce_from = None
    tmp = instance.settings.tmp_dir
    done = threading.Event()
    with renderer._locked():  # as a render in progress holds it
        thread = threading.Thread(target=lambda: (renderer.render_due_lists(), done.set()))
        thread.start()
        deadline = time.monotonic() + 30
        while len(list(tmp.glob("page-*"))) < 2:
            assert time.monotonic() < deadline, "the list was not written before the lock"
            time.sleep(0.02)
        assert not done.is_set()
        assert _list(instance)[1] == ["first"]  # not placed while the lock is held
    thread.join(30)
    assert done.is_set()
    assert _list(instance) == (_journal_end(instance), ["first", "second"])
    assert list(tmp.glob("page-*")) == []


def test_a_serve_coalescing_every_list_serves_exact_lists_and_stops_clean(
    client: AppClient, token: str, instance: Instance, tmp_path: Path
) -> None:
    assert upload(client, make_wheel("first", "1.0"), token).status_code == 200
    server = start_server(
        instance.settings,
        tmp_path / "serve.log",
        env={"TILSIT_INDEX_PAGE_COALESCE_SIZE": "0", "TILSIT_INDEX_PAGE_INTERVAL": "0.2"},
    )
    names = [f"burst-{n}" for n in range(6)]
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for name in names:
                response = upload(http, make_wheel(name, "1.0"), server.token())
                assert response.status_code == 200, response.text
                assert http.get(f"/simple/{name}/").status_code == 200
            deadline = time.monotonic() + 30
            while True:
                response = http.get(
                    "/simple/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
                )
                document = response.json()
                # Whatever a reader gets is exact: the header is the list's own serial.
                assert (
                    int(response.headers["x-pypi-last-serial"]) == document["meta"]["_last-serial"]
                )
                if {p["name"] for p in document["projects"]} >= set(names):
                    break
                assert time.monotonic() < deadline, "the coalesced list never caught up"
                time.sleep(0.1)
            # One more upload, then a clean stop: the stop renders what is due.
            response = upload(http, make_wheel("last", "1.0"), server.token())
            assert response.status_code == 200, response.text
    finally:
        stop(server)
    reopened = open_instance(instance.settings)
    try:
        serial, listed = _list(reopened)
        assert "last" in listed and serial == _journal_end(reopened)
    finally:
        reopened.close()


def test_a_list_built_before_a_newer_one_was_written_is_not_written_over_it(
    client: AppClient, token: str, instance: Instance
) -> None:
    assert upload(client, make_wheel("first", "1.0"), token).status_code == 200
    instance.renderer.coalesce_from = 0
    assert upload(client, make_wheel("second", "1.0"), token).status_code == 200
    # Meanwhile another worker process wrote a list at a later serial (as after more
    # uploads it handled): this process's pass, built from the database now, is older.
    newer = _journal_end(instance) + 10
    page = instance.settings.tree_dir / LIST
    document = json.loads(page.read_bytes())
    document["meta"]["_last-serial"] = newer
    page.write_text(json.dumps(document, separators=(",", ":")))
    written = page.read_bytes()
    instance.renderer.render_due_lists()
    assert page.read_bytes() == written
