"""The proxy hook costs hosted indexes nothing: their reads make no database query."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio.from_thread
from sqlalchemy import event

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.proxy.conftest import JSON
from tests.uploads import upload
from tilsit.index.manage import create_index
from tilsit.instance import Instance
from tilsit.store.tree import file_path
from tilsit.web.app import TilsitApp


@contextmanager
def queries(instance: Instance) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(instance.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(instance.db.engine, "before_cursor_execute", record)


def test_hosted_reads_make_no_query_before_or_after_a_proxy_index_appears(
    instance: Instance, token: str
) -> None:
    wheel = make_wheel("hosted-only", "1.0")
    path = f"/{file_path(wheel.sha256, wheel.filename)}"
    reads = ["/simple/hosted-only/", "/main/simple/hosted-only/", path, f"{path}.metadata"]
    with anyio.from_thread.start_blocking_portal() as portal:
        client = AppClient(portal, TilsitApp(instance))
        try:
            assert upload(client, wheel, token).status_code == 200
            with queries(instance) as seen:
                assert [client.get(p).status_code for p in reads] == [200] * 4
                assert client.get(f"/packages/00/00/{'0' * 60}/x-1.0.tar.gz").status_code == 404
            assert seen == []

            # Another process creates a proxy index: this one learns of it on first use.
            with instance.db.write() as session:
                create_index(session, "px", "proxy", options={"upstream": "http://127.0.0.1:9/"})
            instance.renderer.catch_up()
            listing = client.get("/px/simple/", headers={"Accept": JSON})
            assert listing.json()["projects"] == []
            with queries(instance) as seen:
                assert [client.get(p).status_code for p in reads] == [200] * 4
            assert seen == []
        finally:
            portal.call(client.http.aclose)
