"""nginx in front of tilsit serves a private index from the tree after ``auth_request``
has asked tilsit (``/_/auth/<index>``): anonymous 401, a reader's token 200."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.builders import Dist, make_wheel
from tests.conftest import LiveServer, create_database, start_server, stop_process
from tests.readpath.conftest import need_nginx, start_nginx
from tests.uploads import upload
from tilsit.config import load_settings
from tilsit.store.tree import file_path

pytestmark = pytest.mark.nginx

HTML_CSP = "default-src 'none'; frame-ancestors 'none'"


@dataclass
class Front:
    tilsit: LiveServer
    log: Path
    nginx: str
    wheel: Dist
    reader: str
    stranger: str


def _errors(run_dir: Path) -> list[str]:
    return [
        line
        for line in (run_dir / "error.log").read_text().splitlines()
        if any(f"[{level}]" in line for level in ("error", "crit", "emerg", "alert"))
    ]


@pytest.fixture(scope="module")
def front(postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    need_nginx()
    root = tmp_path_factory.mktemp("private-nginx")
    settings = load_settings(
        overrides={"data": root / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    log = root / "tilsit.log"
    live = start_server(settings, log)
    process: subprocess.Popen[bytes] | None = None
    try:
        live.cli("index", "create", "sec", "--private")
        wheel = make_wheel("hidden", "1.0")
        alice = live.token("alice")
        live.cli("index", "grant", "sec", "alice", "create")  # --private: create policy listed
        with httpx.Client(base_url=live.url, timeout=60) as client:
            response = upload(client, wheel, alice, "/sec/legacy/")
            assert response.status_code == 200, response.text
            response = upload(client, make_wheel("open", "1.0"), live.token("alice"))
            assert response.status_code == 200, response.text
        live.cli("user", "create", "reader")
        live.cli("index", "grant", "sec", "reader", "read")
        run_dir = root / "nginx"
        process, url = start_nginx(settings.tree_dir, live.url, run_dir)
        yield Front(live, log, url, wheel, live.token("reader"), live.token("stranger"))
        assert _errors(run_dir) == [], "nginx logged errors"
    finally:
        if process is not None:
            stop_process(process)
        stop_process(live.process)


def _paths(front: Front) -> list[str]:
    wheel = front.wheel
    own = "/" + file_path(wheel.sha256, wheel.filename, "sec/")
    return [
        "/sec/simple/",
        "/sec/simple/hidden/",
        "/sec/simple/hidden/?format=json",
        "/sec/pypi/hidden/json",
        "/sec/pypi/hidden/1.0/json",
        own,
        own + ".metadata",
    ]


def test_anonymous_401_reader_200_stranger_403(front: Front) -> None:
    with httpx.Client(base_url=front.nginx, timeout=30) as http:
        for path in [*_paths(front), "/sec/mirror-status.json"]:
            anonymous = http.get(path)
            assert anonymous.status_code == 401, (path, anonymous.text)
            assert anonymous.headers["www-authenticate"] == 'Basic realm="tilsit sec"'
            assert anonymous.headers["content-type"].startswith("text/plain")
            assert "API token" in anonymous.text
            refused = http.get(path, auth=("__token__", front.stranger))
            assert refused.status_code == 403, (path, refused.text)
        for path in _paths(front):
            for auth in (("__token__", front.reader), ("reader", front.reader)):
                response = http.get(path, auth=auth)
                assert response.status_code == 200, (path, response.text)
                assert "public" not in response.headers["cache-control"], path
                reference = httpx.get(front.tilsit.url + path, auth=auth, timeout=30)
                assert response.content == reference.content, path
            bearer = http.get(path, headers={"Authorization": f"Bearer {front.reader}"})
            assert bearer.status_code == 200, path


def test_nginx_serves_the_tree_and_asks_tilsit_only_for_the_check(front: Front) -> None:
    before = front.log.read_text()
    with httpx.Client(base_url=front.nginx, timeout=30) as http:
        page = http.get("/sec/simple/hidden/", auth=("__token__", front.reader))
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == HTML_CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    added = front.log.read_text()[len(before) :]
    assert "GET /_/auth/sec" in added, added
    assert "GET /sec/simple/hidden/" not in added, added


def test_conditional_requests_are_checked_first(front: Front) -> None:
    with httpx.Client(base_url=front.nginx, timeout=30) as http:
        for path in _paths(front):
            page = http.get(path, auth=("__token__", front.reader))
            etag = page.headers["etag"]
            sneaky = http.get(path, headers={"If-None-Match": etag})
            assert sneaky.status_code == 401, path
            allowed = http.get(
                path, headers={"If-None-Match": etag}, auth=("__token__", front.reader)
            )
            assert allowed.status_code in (200, 304), path


def test_private_files_are_not_under_the_shared_path_and_public_is_unaffected(
    front: Front,
) -> None:
    wheel = front.wheel
    shared = "/" + file_path(wheel.sha256, wheel.filename)
    with httpx.Client(base_url=front.nginx, timeout=30) as http:
        assert http.get(shared).status_code == 404
        assert http.get(shared, auth=("__token__", front.reader)).status_code == 404
        public = http.get("/simple/open/")
        assert public.status_code == 200
        assert public.headers["content-security-policy"] == HTML_CSP
        assert "public" in public.headers["cache-control"]
        assert http.get("/main/simple/").status_code == 200


def test_the_default_index_made_private_after_nginx_started(front: Front) -> None:
    """The marker is read per request: no nginx reload is needed when an index goes private."""
    front.tilsit.cli("index", "set", "main", "--private")
    try:
        with httpx.Client(base_url=front.nginx, timeout=30) as http:
            response = http.get("/simple/open/")
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == 'Basic realm="tilsit main"'
            assert http.get("/pypi/open/json").status_code == 401
            owner = front.tilsit.token("alice")
            assert http.get("/simple/open/", auth=("__token__", owner)).status_code == 200
    finally:
        front.tilsit.cli("index", "set", "main", "--public")
    with httpx.Client(base_url=front.nginx, timeout=30) as http:
        assert http.get("/simple/open/").status_code == 200


def test_without_tilsit_upstream_a_private_index_is_refused(front: Front, tmp_path: Path) -> None:
    process, url = start_nginx(front.tilsit.settings.tree_dir, None, tmp_path / "nginx")
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            for path in _paths(front):
                assert http.get(path, auth=("__token__", front.reader)).status_code == 403, path
            assert http.get("/simple/open/").status_code == 200
    finally:
        stop_process(process)
