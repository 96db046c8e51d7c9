"""Search finds what was uploaded, ranks names before text, follows changes, and never
shows a private index to a viewer who may not read it.

Every project is published through the upload API as twine sends it; documents come
from the journal follower that each upload's catch-up runs, never from the test.
"""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from tests.conftest import BACKEND
from tests.search.conftest import Search, basic, wheel
from tilsit.db.models import SearchDocRow
from tilsit.index.manage import create_index, delete_index, delete_project, get_index
from tilsit.index.permissions import set_visibility

README = "# Requests\n\nRequests lets you frobnicate remote widgets.\n"


@pytest.fixture
def catalogue(search: Search) -> Search:
    search.publish(wheel("requests", "2.32.3", "HTTP for Humans.", "http client", README))
    search.publish(wheel("requests-toolbelt", "1.0.0", "A utility belt for advanced users."))
    search.publish(wheel("reqeusts-lite", "0.1", "Nothing to see."))
    search.publish(wheel("httpie", "3.2", "Command line client that speaks requests fluently."))
    search.publish(wheel("flask", "3.0", "A micro web framework.", "wsgi web"))
    return search


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("requests", "main/requests"),  # the exact name
        ("Requests", "main/requests"),  # normalised
        ("reqests", "main/requests"),  # a letter left out
        ("requets", "main/requests"),  # another
        ("rewuests", "main/requests"),  # a letter changed
        ("reqeusts", "main/requests"),  # two swapped (and reqeusts-lite begins so)
        ("requ", "main/requests"),  # a prefix
        ("humans", "main/requests"),  # the summary
        ("client", "main/requests"),  # a keyword (and httpie's summary)
        ("frobnicate", "main/requests"),  # a README word
        ("widget", "main/requests"),  # stemmed README word
        ("wsgi", "main/flask"),  # another keyword
        ("micro framework", "main/flask"),  # two summary words
    ],
)
def test_finds_a_project_by_name_typo_prefix_summary_keyword_and_readme(
    catalogue: Search, query: str, expected: str
) -> None:
    assert expected in catalogue.names(query)


def test_ranking_is_exact_then_prefix_then_typo_then_text(catalogue: Search) -> None:
    response = catalogue.json("requests")
    results = response.json()["results"]
    assert [(r["name"], r["match"]) for r in results] == [
        ("requests", "exact"),
        ("requests_toolbelt", "prefix"),
        ("httpie", "text"),
    ]
    typo = catalogue.json("reqeusts").json()["results"]
    assert [(r["name"], r["match"]) for r in typo][:2] == [
        ("reqeusts_lite", "prefix"),
        ("requests", "fuzzy"),
    ]


def test_a_new_release_and_a_delete_are_reflected(catalogue: Search) -> None:
    assert "main/flask" in catalogue.names("micro")
    catalogue.publish(wheel("flask", "3.1", "A nano web framework."))
    assert "main/flask" not in catalogue.names("micro")
    assert "main/flask" in catalogue.names("nano")
    first = catalogue.json("flask").json()["results"][0]
    assert (first["name"], first["version"], first["summary"]) == (
        "flask",
        "3.1",
        "A nano web framework.",
    )
    with catalogue.instance.db.write() as db:
        delete_project(db, get_index(db, "main"), "flask", actor="test")
    catalogue.instance.renderer.catch_up()
    assert catalogue.names("flask") == []
    assert catalogue.names("nano") == []


def test_a_deleted_index_leaves_the_results(catalogue: Search) -> None:
    with catalogue.instance.db.write() as db:
        create_index(db, "extra", actor="test")
    catalogue.instance.renderer.catch_up()
    catalogue.publish(wheel("zebra-tool", "1.0", "Stripes."), index="extra")
    assert catalogue.names("zebra-tool") == ["extra/zebra_tool"]
    with catalogue.instance.db.write() as db:
        delete_index(db, "extra", default_index="main", actor="test")
    catalogue.instance.renderer.catch_up()
    assert catalogue.names("zebra-tool") == []
    with catalogue.instance.db.read() as db:
        assert db.scalars(select(SearchDocRow.normalized)).all().count("zebra-tool") == 0


@pytest.fixture
def private(catalogue: Search) -> Search:
    """Index ``sec`` (private) holds ``secret-tool``, uploaded by alice; ``other`` is public."""
    with catalogue.instance.db.write() as db:
        create_index(db, "sec", actor="test")
        create_index(db, "other", actor="test")
    catalogue.instance.renderer.catch_up()
    catalogue.publish(wheel("secret-tool", "1.0", "Confidential widgets."), index="sec")
    catalogue.publish(wheel("open-tool", "1.0", "Public widgets."), index="other")
    with catalogue.instance.db.write() as db:
        set_visibility(db, get_index(db, "sec"), private=True, actor_name="test")
    catalogue.instance.renderer.catch_up()
    return catalogue


def _secret_in(search: Search, headers: dict[str, str] | None = None) -> bool:
    found = [
        name
        for query in ("secret-tool", "secret", "secrt-tool", "confidential", "widgets", "sec")
        for name in search.names(query, headers)
    ]
    return any(name.startswith("sec/") for name in found)


def test_a_private_index_is_found_only_by_who_may_read_it(private: Search) -> None:
    # Those who may read it: its owner by token (Basic as pip sends it, and Bearer).
    assert _secret_in(private, basic(private.token))
    assert _secret_in(private, {"Authorization": f"Bearer {private.token}"})
    # Anonymous, another user's token, another user's session, a token limited to
    # another index: never, by name, typo, prefix or text.
    assert not _secret_in(private)
    bob = private.user_token("bob")
    assert not _secret_in(private, basic(bob))
    assert "other/open_tool" in private.names("open-tool", basic(bob))
    limited = private.user_token("alice", index="other")
    assert not _secret_in(private, basic(limited))
    assert private.names("widgets", basic(limited)) == ["other/open_tool"]
    assert private.names("requests", basic(limited)) == []  # main is another index too
    browser = private.browser("bob")
    response = browser.get("/_/search?q=secret-tool&format=json")
    assert response.status_code == 200 and response.json()["results"] == []
    assert "secret" not in browser.get("/_/search?q=widgets").text.lower()
    # The owner's session sees it: the session rules are the read rules.
    owner = private.browser("alice")
    names = [r["name"] for r in owner.get("/_/search?q=secret&format=json").json()["results"]]
    assert "secret_tool" in names


def test_a_token_limited_to_projects_sees_only_those(private: Search) -> None:
    only = private.user_token("alice", index="main", projects=["flask"])
    assert private.names("requests", basic(only)) == []
    assert private.names("flask", basic(only)) == ["main/flask"]
    assert not _secret_in(private, basic(only))


def test_an_invalid_token_is_refused_with_the_reason(private: Search) -> None:
    response = private.json("requests", basic("tilsit_not-a-token"))
    assert response.status_code == 401
    assert "token" in response.json()["error"].lower()


def test_an_index_filter_narrows_and_never_opens(private: Search) -> None:
    assert private.names("widgets", index="other") == ["other/open_tool"]
    assert private.names("secret", index="sec") == []  # anonymous: nothing, not an error
    assert private.names("secret", basic(private.token), index="sec") == ["sec/secret_tool"]


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "*",
        "NEAR(",
        "-",
        "OR",
        "AND",
        "NOT",
        'a" OR "b',
        "name:flask",
        "'",
        "\\",
        "(",
        ")",
        "flask*",
        "^flask",
        "a & b | !c",
        "requests:*",
        "%",
        "_",
        "re%",
        "a\x00b",
        "é",
        "🙂",
        "NEAR(a b, 2)",
    ],
)
def test_query_syntax_in_the_query_is_text(catalogue: Search, query: str) -> None:
    response = catalogue.json(query)
    assert response.status_code == 200, response.text
    assert response.json()["query"] == query.replace("\x00", " ").strip()
    assert catalogue.http.get("/_/search", params={"q": query}).status_code == 200


def test_json_and_html_answers(catalogue: Search) -> None:
    by_format = catalogue.http.get("/_/search", params={"q": "reqests", "format": "json"})
    assert by_format.headers["content-type"] == "application/json"
    body = by_format.json()
    assert set(body) == {"query", "page", "next_page", "results"}
    assert body["results"][0] == {
        "index": "main",
        "name": "requests",
        "version": "2.32.3",
        "summary": "HTTP for Humans.",
        "match": "fuzzy",
        "url": "http://testserver/main/project/requests/",
    }
    page = catalogue.http.get("/_/search", params={"q": "reqests"}, headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<label for="search-q">' in page.text
    assert 'href="/main/project/requests/"' in page.text
    assert "content-security-policy" in page.headers


@pytest.mark.parametrize("query", ["", "   ", "x" * 201])
def test_an_empty_or_long_query_is_a_clear_400(catalogue: Search, query: str) -> None:
    response = catalogue.json(query)
    assert response.status_code == 400
    assert "query" in response.json()["error"]
    page = catalogue.http.get("/_/search", params={"q": query})
    assert page.status_code == 400
    assert 'role="alert"' in page.text and ("empty" in page.text or "too long" in page.text)


def test_results_are_paged(search: Search) -> None:
    for n in range(23):
        search.publish(wheel(f"pager-{n:02d}", "1.0", "Paged."))
    first = search.json("pager").json()
    assert len(first["results"]) == 20 and first["next_page"] == 2
    second = search.json("pager", page="2").json()
    assert len(second["results"]) == 3 and second["next_page"] is None
    names = {r["name"] for r in first["results"]} | {r["name"] for r in second["results"]}
    assert len(names) == 23
    assert search.json("pager", page="11").status_code == 400
    assert search.json("pager", page="x").status_code == 400


def test_text_matches_the_viewer_cannot_read_do_not_hide_those_it_can(search: Search) -> None:
    # Hundreds of better matches in a private index (documents written directly: the
    # query is under test here) must not push the one public match off the page.
    with search.instance.db.write() as db:
        hidden = create_index(db, "hidden", actor="test")
        hidden.private = True
        db.flush()
        db.execute(
            insert(SearchDocRow),
            [
                {
                    "index_id": hidden.id,
                    "normalized": f"gadget-{n}",
                    "name": f"gadget-{n}",
                    "summary": "gadget gadget gadget",
                    "keywords": "gadget",
                    "description": "gadget",
                }
                for n in range(300)
            ],
        )
    search.publish(wheel("plain-thing", "1.0", "Has a gadget somewhere in a long summary."))
    assert search.names("gadget") == ["main/plain_thing"]


def test_typos_one_letter_away_by_lookup_and_further_by_trigrams_on_postgresql(
    catalogue: Search,
) -> None:
    # One letter away: the deletion neighbourhood, on both backends.
    assert catalogue.json("requsts").json()["results"][0]["name"] == "requests"
    # Two letters changed: no shared deletion; PostgreSQL's pg_trgm still finds it, the
    # embedded default does not (docs/browsing.md, "Search").
    far = [r["name"] for r in catalogue.json("rekwests").json()["results"]]
    assert ("requests" in far) is (BACKEND == "postgresql"), far
