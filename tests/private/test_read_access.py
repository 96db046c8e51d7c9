"""A private index on the read path: 401 to anonymous requests, 403 to tokens that may not
read it, 200 to those that may, on every route of the index and on its files."""

from __future__ import annotations

import pytest

from tests.builders import make_wheel
from tests.private.conftest import Private, basic, bearer
from tests.uploads import upload
from tilsit.store.tree import PRIVATE_MARKER, file_path
from tilsit.web.gate import CACHE_SECONDS

JSON = "application/vnd.pypi.simple.v1+json"


def routes(private: Private, index: str = "sec", root: str = "/sec") -> list[str]:
    """Every read route of ``index`` that answers 200 to a reader."""
    wheel = private.wheel
    files = "/" + file_path(wheel.sha256, wheel.filename, f"{index}/")
    return [
        f"{root}/simple/",
        f"{root}/simple/secret-tool/",
        f"{root}/simple/secret-tool/?format=json",
        f"{root}/pypi/secret-tool/json",
        f"{root}/pypi/secret-tool/1.0/json",
        f"{root}/legacy/+simple/secret-tool/",
        files,
        files + ".metadata",
    ]


def test_anonymous_requests_get_401_with_a_basic_challenge(private: Private) -> None:
    for path in [*routes(private), "/sec/mirror-status.json", "/sec/simple/nothing-here/"]:
        for method in ("GET", "HEAD"):
            response = private.http.request(method, path)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == 'Basic realm="tilsit sec"'
    body = private.http.get("/sec/simple/").text
    assert "API token" in body and "passwords are not accepted" in body


def test_the_files_are_not_under_the_shared_packages_path(private: Private) -> None:
    wheel = private.wheel
    shared = "/" + file_path(wheel.sha256, wheel.filename)
    assert private.http.get(shared).status_code == 404
    assert private.http.get(shared + ".metadata").status_code == 404
    tree = private.instance.settings.tree_dir
    assert not (tree / file_path(wheel.sha256, wheel.filename)).exists()
    assert (tree / file_path(wheel.sha256, wheel.filename, "sec/")).is_file()
    assert (tree / "sec" / PRIVATE_MARKER).exists()
    # The pages link the private location.
    page = private.http.get(
        "/sec/simple/secret-tool/", headers={"Accept": JSON, **basic(private.owner_token)}
    ).json()
    assert page["files"][0]["url"] == "/" + file_path(wheel.sha256, wheel.filename, "sec/")


def test_a_user_without_read_gets_403_on_every_route(private: Private) -> None:
    token = private.token("bob")
    for path in routes(private):
        for headers in (basic(token), basic(token, "bob"), bearer(token)):
            response = private.http.get(path, headers=headers)
            assert response.status_code == 403, (path, response.text)
            assert "no read permission" in response.text
            assert "www-authenticate" not in response.headers


@pytest.mark.parametrize(
    ("credentials", "status"),
    [
        (basic("not-a-token"), 403),
        (basic("hunter2", "alice"), 403),  # an account password: refused, it would skip 2FA
        (basic("tilsit-" + "A" * 43), 403),  # the shape of a token, but unknown
        (bearer("tilsit-" + "B" * 43), 403),
        # Credentials that carry no token at all are no credentials: the challenge again
        # (pip sends the URL's user name alone before it asks its keyring).
        (basic(""), 401),
        ({"Authorization": "Basic !!!not base64"}, 401),
        ({"Authorization": "Digest username=alice"}, 401),
    ],
)
def test_bad_credentials(private: Private, credentials: dict[str, str], status: int) -> None:
    response = private.http.get("/sec/simple/", headers=credentials)
    assert response.status_code == status, response.text
    assert "token" in response.text
    assert ("www-authenticate" in response.headers) == (status == 401)


def test_readers_get_200_on_every_route(private: Private) -> None:
    private.grant("carol", "read")
    token = private.token("carol")
    for path in routes(private):
        for headers in (basic(token), bearer(token), basic(token, "carol")):
            response = private.http.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text)
            assert "public" not in response.headers.get("cache-control", "")
    # "upload" implies reading (a role on a project opens only that project: test_projects).
    private.grant("dave", "upload")
    assert private.http.get("/sec/simple/", headers=basic(private.token("dave"))).status_code == 200


def test_a_token_limited_to_another_index_is_refused(private: Private) -> None:
    private.grant("erin", "read")
    elsewhere = private.token("erin", index="main")
    response = private.http.get("/sec/simple/", headers=basic(elsewhere))
    assert response.status_code == 403
    assert "limited to another index" in response.text
    here = private.token("erin", index="sec")
    assert private.http.get("/sec/simple/", headers=basic(here)).status_code == 200


def test_revocation_takes_effect_within_the_cache_bound(private: Private) -> None:
    private.grant("frank", "read")
    token = private.token("frank")
    assert private.http.get("/sec/simple/", headers=basic(token)).status_code == 200
    private.revoke_token(token)
    # Cached: still admitted, without asking the database.
    assert private.http.get("/sec/simple/", headers=basic(token)).status_code == 200
    private.clock.advance(CACHE_SECONDS + 0.001)
    response = private.http.get("/sec/simple/", headers=basic(token))
    assert response.status_code == 403
    assert "revoked" in response.text
    assert CACHE_SECONDS <= 30


def test_a_grant_is_noticed_within_the_cache_bound(private: Private) -> None:
    token = private.token("gina")
    assert private.http.get("/sec/simple/", headers=basic(token)).status_code == 403
    private.grant("gina", "read")
    assert private.http.get("/sec/simple/", headers=basic(token)).status_code == 403  # cached
    private.clock.advance(CACHE_SECONDS + 0.001)
    assert private.http.get("/sec/simple/", headers=basic(token)).status_code == 200


def test_a_public_index_is_unaffected(private: Private) -> None:
    assert private.http.get("/simple/").status_code == 200
    assert private.http.get("/main/simple/").status_code == 200
    response = private.http.get("/sec/simple/secret-tool/", headers=basic(private.owner_token))
    assert response.status_code == 200
    # Credentials that would be refused on a private index change nothing on a public one.
    assert private.http.get("/simple/", headers=basic("whatever")).status_code == 200


def test_the_default_index_can_be_private(private: Private) -> None:
    wheel = private.wheel
    uploaded = upload(private.http, wheel, private.owner_token, "/legacy/")
    assert uploaded.status_code == 200, uploaded.text
    shared = "/" + file_path(wheel.sha256, wheel.filename)
    assert private.http.get(shared).status_code == 200  # main is public: shared path
    private.set_private("main", True)
    private.grant("owen", "read", "main")
    reader = private.token("owen")
    root = routes(private, "main", "")
    for path in root:
        assert private.http.get(path).status_code == 401, path
        assert private.http.get(path, headers=basic(reader)).status_code == 200, path
    # Alice owns secret-tool in main: she reads its pages and files at the root paths too,
    # but not the project list.
    for path in root[1:]:
        assert private.http.get(path, headers=basic(private.owner_token)).status_code == 200, path
    assert private.http.get("/simple/", headers=basic(private.owner_token)).status_code == 403
    assert private.http.get(shared).status_code == 404
    # Back to public: the files return to the shared path and the private copy goes.
    private.set_private("main", False)
    assert private.http.get(shared).status_code == 200
    assert private.http.get("/simple/secret-tool/").status_code == 200
    own = "/" + file_path(wheel.sha256, wheel.filename, "main/")
    assert private.http.get(own).status_code == 404


def test_making_the_index_public_again_restores_anonymous_reads(private: Private) -> None:
    private.set_private("sec", False)
    wheel = private.wheel
    for path in ["/sec/simple/secret-tool/", "/" + file_path(wheel.sha256, wheel.filename)]:
        assert private.http.get(path).status_code == 200, path
    tree = private.instance.settings.tree_dir
    assert not (tree / "sec" / PRIVATE_MARKER).exists()
    # The private copies go; only the <sha256>.<name> links TUF clients fetch stay.
    left = [p.name for p in (tree / "sec" / "packages").rglob("*") if p.is_file()]
    assert sorted(name.split(".", 1)[1] for name in left) == [
        wheel.filename,
        wheel.filename + ".metadata",
    ], left
    own = "/" + file_path(wheel.sha256, wheel.filename, "sec/")
    assert private.http.get(own).status_code == 404


def test_nginx_auth_endpoint(private: Private) -> None:
    response = private.http.get("/_/auth/sec")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="tilsit sec"'
    assert private.http.get("/_/auth/sec", headers=basic(private.token("hal"))).status_code == 403
    # Without the original path, the question is about the whole index.
    assert private.http.get("/_/auth/sec", headers=basic(private.owner_token)).status_code == 403
    private.grant("hank", "read")
    assert private.http.get("/_/auth/sec", headers=basic(private.token("hank"))).status_code == 204
    # With it (nginx sends $request_uri), a project's Owner reads that project only.
    own = {"X-Original-URI": "/sec/simple/secret-tool/", **basic(private.owner_token)}
    assert private.http.get("/_/auth/sec", headers=own).status_code == 204
    other = {"X-Original-URI": "/sec/simple/secret-tool/../other/", **basic(private.owner_token)}
    assert private.http.get("/_/auth/sec", headers=other).status_code == 403
    assert private.http.get("/_/auth/main").status_code == 204  # public
    assert private.http.get("/_/auth/../etc").status_code == 404


def test_simple_html_pages_carry_a_csp(private: Private) -> None:
    for path in ["/simple/", "/sec/simple/secret-tool/"]:
        response = private.http.get(path, headers=basic(private.owner_token))
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["content-security-policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )
        assert response.headers["x-content-type-options"] == "nosniff"
    json_page = private.http.get("/simple/", headers={"Accept": JSON})
    assert "content-security-policy" not in json_page.headers


def test_uploads_to_a_private_index_still_need_only_the_upload_token(private: Private) -> None:
    response = upload(
        private.http, make_wheel("Secret_Tool", "1.1"), private.owner_token, "/sec/legacy/"
    )
    assert response.status_code == 200, response.text
    private.grant("ivan", "read")
    stranger = upload(
        private.http, make_wheel("Secret_Tool", "1.2"), private.token("ivan"), "/sec/legacy/"
    )
    assert stranger.status_code == 403, stranger.text
    assert "ask an owner for a role" in stranger.text
