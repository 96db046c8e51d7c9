"""Attacks on the read model of private indexes, against a live server and nginx in front.

The setting the attacks were first tried in: a private index ``sec`` whose create policy is
"anyone", so that any account may create a project in it. mallory, a fresh account, creates
``dummy`` there, which makes him its Owner. A role on a project opens that project's pages
and files, and nothing else: not another project, not the project list, not the TUF
metadata. A token limited to projects reaches those projects only, in its own index.

Every read is tried on tilsit itself and through the shipped nginx config (whose
``auth_request`` passes the original path to tilsit); paths that climb out of a project
(``..``, encoded or not) are sent raw, as a client can send them.
"""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest

from tests.builders import Dist, make_wheel
from tests.conftest import LiveServer, create_database, start_server, stop_process
from tests.readpath.conftest import need_nginx, start_nginx
from tests.uploads import upload
from tilsit.config import load_settings
from tilsit.store.tree import file_path
from tilsit.trust.layout import file_target, hashed_path

JSON = "application/vnd.pypi.simple.v1+json"


@dataclass
class Site:
    tilsit: LiveServer
    jewels: Dist  # alice's crown-jewels 1.0 in sec
    second: Dist  # alice's second-jewel 1.0 in sec
    vaulted: Dist  # alice's crown 1.0 in vault (private, create policy listed)
    dummy: Dist  # mallory's dummy 1.0 in sec
    alice: str
    mallory: str


def _upload(live: LiveServer, dist: Dist, token: str, index: str) -> httpx.Response:
    with httpx.Client(base_url=live.url, timeout=60) as client:
        return upload(client, dist, token, f"/{index}/legacy/")


@pytest.fixture(scope="module")
def site(postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("private-attacks")
    settings = load_settings(
        overrides={"data": root / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    live = start_server(settings, root / "tilsit.log")
    try:
        live.cli("index", "create", "sec", "--private", "--create-policy", "anyone")
        vault = live.cli("index", "create", "vault", "--private")
        assert "create policy listed" in vault.stdout, vault.stdout
        live.cli("index", "create", "other")
        alice = live.token("alice")
        live.cli("index", "grant", "vault", "alice", "create")
        live.cli("index", "grant", "sec", "alice", "read")  # alice reads all of sec
        jewels, second = make_wheel("crown-jewels", "1.0"), make_wheel("second-jewel", "1.0")
        vaulted, dummy = make_wheel("crown", "1.0"), make_wheel("dummy", "1.0")
        for dist, index in ((jewels, "sec"), (second, "sec"), (vaulted, "vault")):
            response = _upload(live, dist, alice, index)
            assert response.status_code == 200, response.text
        mallory = live.token("mallory")
        response = _upload(live, dummy, mallory, "sec")  # any account may create in sec
        assert response.status_code == 200, response.text
        yield Site(live, jewels, second, vaulted, dummy, alice, mallory)
    finally:
        stop_process(live.process)


@pytest.fixture(scope="module", params=["tilsit", pytest.param("nginx", marks=pytest.mark.nginx)])
def base(
    request: pytest.FixtureRequest, site: Site, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Where the reads go: tilsit itself, or nginx in front of the same tree."""
    if request.param == "tilsit":
        yield site.tilsit.url
        return
    need_nginx()
    run_dir = tmp_path_factory.mktemp("nginx")
    process, url = start_nginx(site.tilsit.settings.tree_dir, site.tilsit.url, run_dir)
    try:
        yield url
    finally:
        stop_process(process)


def project_paths(dist: Dist, project: str, index: str = "sec") -> list[str]:
    """Every read path of one project: its pages, legacy JSON, a file and its metadata,
    and the ``<sha256>.<name>`` links TUF clients fetch."""
    own = "/" + file_path(dist.sha256, dist.filename, f"{index}/")
    return [
        f"/{index}/simple/{project}/",
        f"/{index}/simple/{project}/?format=json",
        f"/{index}/pypi/{project}/json",
        f"/{index}/pypi/{project}/1.0/json",
        own,
        own + ".metadata",
        "/" + hashed_path(index, file_target(dist.sha256, dist.filename), dist.sha256),
    ]


def index_paths(index: str = "sec") -> list[str]:
    return [
        f"/{index}/simple/",
        f"/{index}/simple/?format=json",
        f"/{index}/tuf/timestamp.json",
        f"/{index}/tuf/1.root.json",
    ]


def _get(base: str, path: str, token: str) -> httpx.Response:
    return httpx.get(base + path, auth=("__token__", token), timeout=30)


def _raw_get(base: str, path: str, token: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written: httpx would resolve the dot segments first."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_project_of_ones_own_opens_that_project_only(site: Site, base: str) -> None:
    own = project_paths(site.dummy, "dummy")
    page = _get(base, "/sec/simple/dummy/", site.mallory)
    hashed_page = f"/sec/simple/dummy/{hashlib.sha256(page.content).hexdigest()}.index.html"
    for path in [*own, hashed_page]:
        response = _get(base, path, site.mallory)
        assert response.status_code == 200, (path, response.text)
        assert "public" not in response.headers.get("cache-control", ""), path
    for path in [*project_paths(site.jewels, "crown-jewels"), *index_paths()]:
        response = _get(base, path, site.mallory)
        assert response.status_code == 403, (path, response.status_code, response.text[:200])
        assert site.jewels.filename not in response.text, path
    # The same token reads nothing of another private index.
    for path in [*project_paths(site.vaulted, "crown", "vault"), *index_paths("vault")]:
        assert _get(base, path, site.mallory).status_code == 403, path


def test_paths_that_climb_out_of_ones_own_project_are_refused(site: Site, base: str) -> None:
    jewels = "/" + file_path(site.jewels.sha256, site.jewels.filename, "sec/")
    climbs = [
        "/sec/simple/dummy/../crown-jewels/",
        "/sec/simple/dummy/%2e%2e/crown-jewels/",
        "/sec/simple/dummy/%2E%2E%2Fcrown-jewels/",
        "/sec/simple/dummy/./../crown-jewels/?format=json",
        "/sec/simple/dummy//..//crown-jewels/",
        "/sec/pypi/dummy/../crown-jewels/json",
        "/sec/pypi/dummy/%2e%2e/crown-jewels/1.0/json",
        "/sec/simple/dummy/../",
        f"/sec/simple/dummy/../..{jewels.removeprefix('/sec')}",
        f"/sec/pypi/dummy/%2e%2e/%2e%2e{jewels.removeprefix('/sec')}",
    ]
    for path in climbs:
        status, body = _raw_get(base, path, site.mallory)
        assert status in (400, 403, 404), (path, status, body[:200])
        # An error may echo the path; it must carry nothing of crown-jewels' pages or file.
        assert b"<a " not in body and b'"files"' not in body, (path, body[:200])
        assert site.jewels.data not in body, path
    # Straight, the same requests are mallory's own and succeed.
    assert _raw_get(base, "/sec/simple/dummy/", site.mallory)[0] == 200


def test_the_nginx_auth_endpoint_judges_the_original_path(site: Site) -> None:
    """What nginx's subrequest sends: the same decisions, with the path resolved first."""
    url = f"{site.tilsit.url}/_/auth/sec"

    def ask(original: str | None) -> int:
        headers = {"Authorization": f"Bearer {site.mallory}"}
        if original is not None:
            headers["X-Original-URI"] = original
        return httpx.get(url, headers=headers, timeout=30).status_code

    assert ask("/sec/simple/dummy/") == 204
    assert ask("/sec/simple/Dummy/") == 204  # the redirect to the normalised name
    assert ask("/sec/simple/crown-jewels/") == 403
    assert ask("/sec/simple/dummy/%2e%2e/crown-jewels/") == 403
    assert ask("/sec/simple/dummy/../../../sec/simple/crown-jewels/") == 403
    assert ask("/sec/simple/") == 403
    assert ask(None) == 403  # no path: a question about the whole index
    assert ask("/vault/simple/dummy/") == 403  # a path of another index: the whole index's


def test_a_project_scoped_token_reads_its_project_only(site: Site, base: str) -> None:
    ci = site.tilsit.token("alice", projects=["crown-jewels"], index="sec")
    for path in project_paths(site.jewels, "crown-jewels"):
        response = _get(base, path, ci)
        assert response.status_code == 200, (path, response.text)
    # alice reads all of sec with an unlimited token; this one opens crown-jewels only.
    for path in [*project_paths(site.second, "second-jewel"), *index_paths()]:
        assert _get(base, path, site.alice).status_code == 200, path
        response = _get(base, path, ci)
        assert response.status_code == 403, (path, response.text)
    for path in [*project_paths(site.vaulted, "crown", "vault"), *index_paths("vault")]:
        assert _get(base, path, site.alice).status_code == 200, path
        assert _get(base, path, ci).status_code == 403, path
    # Limited to a project but made without an index: the default index's, not sec's.
    unpinned = site.tilsit.token("alice", projects=["crown-jewels"])
    response = _get(base, "/sec/simple/crown-jewels/", unpinned)
    assert response.status_code == 403
    if base == site.tilsit.url:  # nginx answers 403 in its own words
        assert "limited to another index" in response.text


def test_a_project_scoped_token_creates_in_its_own_index_only(site: Site) -> None:
    live = site.tilsit
    fresh = live.token("alice", projects=["fresh-name"])  # no index given: the default's
    for index in ("other", "sec"):
        refused = _upload(live, make_wheel("fresh-name", "1.0"), fresh, index)
        assert refused.status_code == 403, refused.text
        assert f"not valid for index {index!r}" in refused.text
        assert httpx.get(f"{live.url}/{index}/simple/fresh-name/").status_code in (401, 404)
    pinned = live.token("alice", projects=["crown-jewels"], index="sec")
    refused = _upload(live, make_wheel("crown-jewels", "1.0"), pinned, "other")
    assert refused.status_code == 403, refused.text
    assert httpx.get(f"{live.url}/other/simple/crown-jewels/").status_code == 404
    ok = _upload(live, make_wheel("fresh-name", "1.0"), fresh, "main")
    assert ok.status_code == 200, ok.text


def test_the_upload_api_answers_alike_for_existing_and_missing_projects(site: Site) -> None:
    """vault is private with create policy listed: mallory may neither read nor create."""
    live = site.tilsit
    existing = _upload(live, make_wheel("crown", "2.0"), site.mallory, "vault")
    missing = _upload(live, make_wheel("ghost", "1.0"), site.mallory, "vault")
    assert existing.status_code == missing.status_code == 404, (existing.text, missing.text)
    assert existing.text.replace("crown", "NAME") == missing.text.replace("ghost", "NAME")
    assert existing.reason_phrase.replace("crown", "NAME") == missing.reason_phrase.replace(
        "ghost", "NAME"
    )
    assert _get(live.url, "/vault/pypi/crown/json", site.alice).json()["releases"].keys() == {"1.0"}
    # A reader of the index is told the real reason.
    live.cli("index", "grant", "vault", "mallory", "read")
    try:
        readable = _upload(live, make_wheel("crown", "2.0"), site.mallory, "vault")
        assert readable.status_code == 403 and "ask an owner" in readable.text, readable.text
    finally:
        live.cli("index", "revoke", "vault", "mallory", "read")


def test_a_look_alike_name_names_no_project_to_a_non_reader(site: Site) -> None:
    """In sec anyone may create, but the refusal of a look-alike names nothing it hides."""
    refused = _upload(site.tilsit, make_wheel("crown_jewe1s", "1.0"), site.mallory, "sec")
    assert refused.status_code == 400, refused.text
    assert "too similar to an existing project" in refused.text
    assert "crown_jewels" not in refused.text, refused.text  # the stored name
    # alice reads sec: she is told which project.
    told = _upload(site.tilsit, make_wheel("crown_jewe1s", "1.0"), site.alice, "sec")
    assert told.status_code == 400 and "'crown_jewels'" in told.text, told.text


def test_the_bytes_of_ones_own_file_are_served(site: Site, base: str) -> None:
    own = "/" + file_path(site.dummy.sha256, site.dummy.filename, "sec/")
    response = _get(base, own, site.mallory)
    assert response.status_code == 200
    assert response.content == site.dummy.data
