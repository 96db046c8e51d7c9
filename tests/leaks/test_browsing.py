"""Issue 14: a private index leaks through none of the browsing surfaces.

One live server holds a public index ``main`` (``open-thing``) and a private one
``secret`` (``hidden-thing``, summary "classified…", downloaded once). Its Owner is
the positive control: every surface shows them the private project, so each
negative check below looks where the data would be. Then anonymous visitors,
another user with a session, and tokens without read on ``secret`` (basic auth as
pip sends it, and Bearer as tools send it) ask every surface: the home page, the
index page, the project and release pages, search (HTML and JSON) and the
download statistics. None may show the private project, its summary or its counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import create_account
from tests.builders import make_wheel
from tests.conftest import LiveServer, start_server, stop
from tests.uploads import upload
from tilsit.config import Settings
from tilsit.db.engine import Database
from tilsit.db.models import UserRow
from tilsit.index.manage import get_index
from tilsit.index.permissions import grant_permission

PASSWORD = "correct horse battery staple 42"
SECRET_WORD = "classified"
HIDDEN = "hidden-thing"

# Every browsing surface that could show the private project.
SURFACES = [
    "/",
    "/secret/",
    f"/secret/project/{HIDDEN}/",
    f"/secret/project/{HIDDEN}/1.0/",
    f"/_/search?q={HIDDEN}",
    f"/_/search?q={SECRET_WORD}",
    "/_/search?q=hiden-thing",  # a typo finds it by fuzzy name
    f"/_/search?q={HIDDEN}&format=json",
    f"/_/search?q={SECRET_WORD}&format=json",
    f"/_/stats/secret/{HIDDEN}/recent",
    f"/_/stats/secret/{HIDDEN}/overall",
]


@dataclass
class Viewer:
    name: str
    headers: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None


def _session(base: str, name: str) -> dict[str, str]:
    """A logged-in session's cookie header (the Secure cookie carried by hand over http)."""
    with httpx.Client(base_url=base) as http:
        page = http.get("/account/login")
        cookie = page.headers["set-cookie"].split(";", 1)[0]
        csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        done = http.post(
            "/account/login",
            data={"name": name, "password": PASSWORD, "csrf_token": csrf},
            headers={"cookie": cookie},
        )
        assert done.status_code == 303, done.text[:300]
        return {"cookie": done.headers["set-cookie"].split(";", 1)[0]}


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    live = start_server(settings, tmp_path / "server.log")
    yield live
    stop(live)


def _publish(server: LiveServer) -> None:
    settings = server.settings
    for user in ("olive", "bob"):
        create_account(settings, user, PASSWORD)
    server.cli("index", "create", "secret", "--private", "--create-policy", "anyone")
    db = Database(settings.db_url)
    try:
        with db.write() as session:
            olive = session.query(UserRow).filter_by(name="olive").one()
            grant_permission(
                session, get_index(session, "secret"), olive, "upload", actor_name="test"
            )
    finally:
        db.dispose()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        meta = {"summary": f"A {SECRET_WORD} project nobody else may see"}
        hidden = upload(
            http, make_wheel(HIDDEN, "1.0", **meta), server.token("olive"), "/secret/legacy/"
        )
        assert hidden.status_code == 200, hidden.text
        opened = upload(http, make_wheel("open-thing", "1.0"), server.token("bob"))
        assert opened.status_code == 200, opened.text
        # One download of the private file, by its reader, so there are counts to leak.
        simple = http.get(
            f"/secret/simple/{HIDDEN}/",
            headers={"accept": "application/vnd.pypi.simple.v1+json"},
            auth=("__token__", server.token("olive")),
        ).json()
        got = http.get(
            simple["files"][0]["url"], auth=("__token__", server.token("olive")), timeout=30
        )
        assert got.status_code == 200


def _get(server: LiveServer, viewer: Viewer, path: str) -> httpx.Response:
    return httpx.get(
        server.url + path,
        headers={"accept": "text/html", **viewer.headers},
        auth=viewer.auth,
        timeout=30,
        follow_redirects=False,
    )


def test_private_index_leaks_through_no_browsing_surface(server: LiveServer) -> None:
    _publish(server)
    owner = Viewer("owner", _session(server.url, "olive"))
    # Positive control: the owner sees the private project on every surface, once the
    # search index and the download counts (flushed in batches) have caught up.
    deadline = time.monotonic() + 60
    while True:
        seen = {path: _get(server, owner, path) for path in SURFACES}
        shown = {
            path: r.status_code == 200 and (HIDDEN in r.text or '"last_day"' in r.text)
            for path, r in seen.items()
        }
        counted = '"last_day": 0' not in seen[f"/_/stats/secret/{HIDDEN}/recent"].text
        if all(shown.values()) and counted:
            break
        assert time.monotonic() < deadline, {
            p: (r.status_code, ok) for (p, r), ok in zip(seen.items(), shown.values(), strict=True)
        }
        time.sleep(0.5)

    bob_token = server.token("bob")
    main_only = server.token("olive", index="main")  # olive's, limited to another index
    viewers = [
        Viewer("anonymous"),
        Viewer("another user", _session(server.url, "bob")),
        Viewer("token without read (basic)", auth=("__token__", bob_token)),
        Viewer("token without read (bearer)", {"authorization": f"Bearer {bob_token}"}),
        Viewer("token of another index", {"authorization": f"Bearer {main_only}"}),
    ]
    for viewer in viewers:
        for path in SURFACES:
            response = _get(server, viewer, path)
            body = response.text
            where = (viewer.name, path, response.status_code, body[:300])
            # Nothing of the project beyond the words of the request itself.
            assert f"/secret/project/{HIDDEN}" not in body.replace(
                f'"/secret/project/{HIDDEN}/', ""
            ), where
            assert "nobody else may see" not in body and "olive" not in body, where
            if "format=json" in path:
                assert response.status_code == 200, where
                assert [r for r in response.json()["results"] if r["index"] == "secret"] == [], (
                    where
                )
            if path.startswith(("/secret/", "/_/stats/")):
                # The very answer a project that never existed gets, name for name.
                assert response.status_code == 404, where
                missing = _get(server, viewer, path.replace(HIDDEN, "never-was")).text
                assert body == missing.replace("never-was", HIDDEN), where
        home = _get(server, viewer, "/").text
        assert "/secret/" not in home and "open-thing" in home, viewer.name
