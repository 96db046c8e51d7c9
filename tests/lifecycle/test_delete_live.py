"""A deleted index, on a running server and behind nginx: every URL of it answers 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import LiveServer, run_cli, start_server, stop, stop_process
from tests.readpath.conftest import need_nginx, start_nginx
from tests.uploads import upload
from tilsit.config import Settings
from tilsit.instance import open_instance
from tilsit.spec.simple import JSON
from tilsit.upstream.schedule import due_mirrors


@pytest.fixture
def live(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    run_cli(settings, "index", "create", "team")
    run_cli(settings, "index", "create", "secret", "--private", "--create-policy", "anyone")
    server = start_server(settings, tmp_path / "server.log")
    yield server
    stop(server)


def _urls(server: LiveServer, token: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Each kind of URL of ``team`` and ``secret``, with the headers that open it."""
    auth = {"Authorization": f"Bearer {token}"}
    urls: dict[str, tuple[str, dict[str, str]]] = {}
    for index, headers in (("team", {}), ("secret", auth)):
        page = httpx.get(
            f"{server.url}/{index}/simple/lc-{index}/", headers={"Accept": JSON, **headers}
        )
        assert page.status_code == 200, page.text
        urls[f"{index} root"] = (f"/{index}/simple/", headers)
        urls[f"{index} page"] = (f"/{index}/simple/lc-{index}/", headers)
        urls[f"{index} json"] = (f"/{index}/pypi/lc-{index}/json", headers)
        urls[f"{index} tuf"] = (f"/{index}/tuf/1.root.json", headers)
    for index, headers in (("team", {}), ("secret", auth)):
        page = httpx.get(
            f"{server.url}/{index}/simple/lc-{index}/", headers={"Accept": JSON, **headers}
        )
        # team's under the shared /packages/, secret's under /secret/packages/.
        file_url = urlsplit(page.json()["files"][0]["url"]).path
        urls[f"{index} file"] = (file_url, headers)
        urls[f"{index} metadata"] = (f"{file_url}.metadata", headers)
    return urls


def test_deleted_index_answers_404_from_tilsit_and_nginx(
    live: LiveServer, settings: Settings, tmp_path: Path
) -> None:
    token = live.token("alice")
    run_cli(settings, "index", "grant", "secret", "alice", "read")
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for index in ("team", "secret"):
            done = upload(client, make_wheel(f"lc-{index}", "1.0"), token, f"/{index}/legacy/")
            assert done.status_code == 200, done.text
    urls = _urls(live, token)
    nginx = None
    try:
        need_nginx()
        nginx = start_nginx(settings.tree_dir, live.url.removeprefix("http://"), tmp_path / "ng")
    except pytest.skip.Exception:
        pass  # tilsit's own answers are still checked
    servers = {"tilsit": live.url, **({"nginx": nginx[1]} if nginx else {})}
    try:
        for where, base in servers.items():
            for what, (path, headers) in urls.items():
                answer = httpx.get(f"{base}{path}", headers=headers)
                assert answer.status_code == 200, (where, what, answer.text)

        run_cli(settings, "index", "delete", "team", "--yes")
        run_cli(settings, "index", "delete", "secret", "--yes")

        for where, base in servers.items():
            for what, (path, headers) in urls.items():
                answer = httpx.get(f"{base}{path}", headers=headers)
                assert answer.status_code == 404, (where, what, answer.status_code, answer.text)
        # Uploads go nowhere either, and the default index is untouched.
        with httpx.Client(base_url=live.url, timeout=30) as client:
            refused = upload(client, make_wheel("lc-team", "2.0"), token, "/team/legacy/")
            assert refused.status_code == 404, refused.text
            assert "no index named 'team'" in refused.text
            assert client.get("/simple/").status_code == 200
    finally:
        if nginx is not None:
            stop_process(nginx[0])


def test_deleted_mirror_is_not_scheduled(settings: Settings) -> None:
    run_cli(
        settings, "index", "create", "hourly", "--mirror", "http://127.0.0.1:9/", "--interval", "1h"
    )
    instance = open_instance(settings)
    try:
        assert due_mirrors(instance) == ["hourly"]
        run_cli(settings, "index", "delete", "hourly", "--yes")
        assert due_mirrors(instance) == []
    finally:
        instance.close()
