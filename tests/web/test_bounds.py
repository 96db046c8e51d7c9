"""Names the tree cannot hold are refused where they enter: uploads, mirror syncs, proxies.

Before the bound, a 240-character project name was accepted and committed, and
then every render failed: other users' uploads got 500 and ``tilsit serve`` no
longer started.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import select

from tests.builders import make_sdist, make_wheel
from tests.conftest import LiveServer
from tests.uploads import upload
from tests.upstream.conftest import Notes
from tests.upstream.static import StaticServer, StaticTree
from tilsit.db.models import ProjectRow
from tilsit.index.manage import create_index
from tilsit.instance import Instance
from tilsit.spec.names import MAX_NAME_LENGTH, MAX_VERSION_LENGTH
from tilsit.upstream.sync import sync_mirror


def test_upload_of_a_name_past_the_bound_is_refused(live_server: LiveServer) -> None:
    token = live_server.token()
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        too_long = "n" * (MAX_NAME_LENGTH + 1)
        response = upload(http, make_sdist(too_long, "1.0"), token)
        assert response.status_code == 400, response.text
        assert f"at most {MAX_NAME_LENGTH}" in response.text
        response = upload(http, make_sdist("n" * 240, "1.0"), token)
        assert response.status_code == 400, response.text
        # Nothing was stored, and everyone else goes on.
        assert http.get(f"/simple/{too_long}/").status_code == 404
        response = upload(http, make_wheel("ordinary", "1.0"), live_server.token("bob"))
        assert response.status_code == 200, response.text
        assert http.get("/simple/ordinary/").status_code == 200
        longest = "n" * MAX_NAME_LENGTH
        assert upload(http, make_sdist(longest, "1.0"), token).status_code == 200
        assert http.get(f"/simple/{longest}/").status_code == 200


def test_upload_of_a_version_past_the_bound_is_refused(live_server: LiveServer) -> None:
    """A version is a directory of the tree (``pypi/<project>/<version>/json``)."""
    token = live_server.token()
    too_long = "1" + ".0" * (MAX_VERSION_LENGTH // 2)
    assert len(too_long) > MAX_VERSION_LENGTH
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        response = upload(http, make_wheel("longver", too_long), token)
        assert response.status_code == 400, response.text
        assert "Field 'version'" in response.text
        assert http.get("/simple/longver/").status_code == 404
        assert upload(http, make_wheel("longver", "1.0"), token).status_code == 200


def test_a_mirror_refuses_a_listed_name_past_the_bound_and_goes_on(
    instance: Instance, tmp_path: Path
) -> None:
    upstream = StaticTree(tmp_path / "upstream")
    upstream.add("fine", make_wheel("fine", "1.0"))
    upstream.add("m" * 240, make_sdist("m" * 240, "1.0"))
    server = StaticServer(upstream.root)
    try:
        with instance.db.write() as session:
            create_index(
                session,
                "mirror",
                "mirror",
                actor="test",
                options={"upstream": f"{server.url}/simple/"},
            )
        notes = Notes()
        report = asyncio.run(
            sync_mirror(instance, "mirror", attempts=1, backoff=0.01, reporter=notes)
        )
    finally:
        server.stop()
    # Named in the sync's output, and refused before any request for its page.
    [refusal] = [line for line in notes.lines if "m" * 240 in line]
    assert f"at most {MAX_NAME_LENGTH}" in refusal
    assert report.synced == 1
    with instance.db.read() as session:
        names = set(session.scalars(select(ProjectRow.normalized)))
    assert names == {"fine"}
    assert (instance.settings.tree_dir / "mirror/simple/fine/index.html").is_file()
    assert instance.tree.serial() > 0


def test_a_proxy_never_asks_upstream_for_a_name_past_the_bound(
    instance: Instance, tmp_path: Path
) -> None:
    from tests.conftest import start_server, stop

    upstream = StaticTree(tmp_path / "upstream")
    upstream.add("p" * 240, make_sdist("p" * 240, "1.0"))
    static = StaticServer(upstream.root)
    with instance.db.write() as session:
        create_index(
            session, "px", "proxy", actor="test", options={"upstream": f"{static.url}/simple/"}
        )
    instance.renderer.catch_up()
    server = start_server(instance.settings, tmp_path / "serve.log")
    try:
        response = httpx.get(f"{server.url}/px/simple/{'p' * 240}/", timeout=30)
        assert response.status_code == 404
        assert static.taken() == []
        assert httpx.get(f"{server.url}/_/health", timeout=30).json()["status"] == "ok"
    finally:
        stop(server)
        static.stop()
