"""A private index stays invisible on the browsing pages to whoever may not read it:
not on the home page, not among recent uploads, and its page answers as a missing one."""

from __future__ import annotations

from tests.admin.signin import sign_in
from tests.builders import make_wheel
from tests.private.conftest import Private, basic
from tests.uploads import upload


def _sees_nothing(get: object, label: str) -> None:
    assert callable(get)
    home = get("/")
    assert home.status_code == 200, label
    assert "/sec/" not in home.text and ">sec<" not in home.text, label
    assert "secret-tool" not in home.text.lower().replace("_", "-"), label
    unknown = get("/nowhere/")
    for path in ("/sec/", "/sec", "/sec/?sort=updated&page=2"):
        page = get(path)
        assert page.status_code == 404, (label, path)
        # Word for word what a missing index answers (its name swapped): nothing tells them apart.
        assert page.text.replace("sec", "nowhere") == unknown.text, (label, path)
        assert "location" not in page.headers, (label, path)


def test_private_index_is_invisible_to_those_who_may_not_read(private: Private) -> None:
    http = private.http
    # Something public beside it, so the home page has recent uploads to show.
    assert upload(http, make_wheel("open-tool", "1.0"), private.owner_token).status_code == 200
    anonymous_home = http.get("/").text
    assert 'href="/main/project/open-tool/"' in anonymous_home
    _sees_nothing(http.get, "anonymous")

    db_url = private.instance.settings.db_url
    bob = sign_in(db_url, http, "bob")
    _sees_nothing(bob.get, "another user")
    # Alice owns secret-tool (she uploaded it) but holds no read on the index.
    alice = sign_in(db_url, http, "alice")
    _sees_nothing(alice.get, "a project owner without read on the index")

    # Tokens: the web pages go by the session only, so no token opens them, with or
    # without read (the read path's gate is where tokens count).
    without_read = private.token("bob")
    _sees_nothing(lambda path: http.get(path, headers=basic(without_read)), "token without read")
    private.grant("dave", "read")
    with_read = private.token("dave", "sec")
    _sees_nothing(lambda path: http.get(path, headers=basic(with_read)), "a token, no session")

    # A reader sees all of it.
    private.grant("carol", "read")
    carol = sign_in(db_url, http, "carol")
    home = carol.get("/").text
    assert '<a href="/sec/">sec</a> <span class="tag">private</span>' in home
    assert 'href="/sec/project/secret-tool/"' in home
    page = carol.get("/sec/")
    assert page.status_code == 200
    assert '<dt>Access</dt><dd><span class="tag">private</span>' in page.text
    assert 'href="/sec/project/secret-tool/"' in page.text
    assert "__token__" in page.text  # the install hint says a token is needed
    assert carol.get("/sec").status_code == 301


def test_token_page_names_only_the_indexes_a_user_may_use(private: Private) -> None:
    """The token form's index list is shown to every account: a private index appears only
    to its readers and to users with a role on one of its projects."""
    db_url = private.instance.settings.db_url
    option = '<option value="sec">sec</option>'
    bob = sign_in(db_url, private.http, "bob")
    page = bob.get("/account/tokens")
    assert page.status_code == 200
    assert '<option value="main">main</option>' in page.text
    assert option not in page.text
    refused = bob.post("/account/tokens/new", {"description": "x", "index": "sec", "expiry": "30"})
    assert "There is no hosted index named &#39;sec&#39;." in refused.text
    assert option in sign_in(db_url, private.http, "alice").get("/account/tokens").text
    private.grant("carol", "read")
    assert option in sign_in(db_url, private.http, "carol").get("/account/tokens").text
