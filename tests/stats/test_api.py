"""``/_/stats/<index>/<project>/recent|overall``: pypistats.org's shapes, the numbers the
counters wrote, and no answer at all (404, in the words of a missing project) to whoever
may not read a private project."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.admin.signin import sign_in
from tests.private.conftest import Private, basic, bearer
from tests.stats.conftest import SDIST_1, WHEEL_1, WHEEL_2, Counted
from tilsit.index.download_stats import today
from tilsit.store.tree import file_path


def test_recent_and_overall_have_pypistats_shapes(counted: Counted) -> None:
    now = today()
    counted.add(WHEEL_1.filename, now, 2)
    counted.add(SDIST_1.filename, now - timedelta(days=3), 1)
    counted.add(WHEEL_2.filename, now - timedelta(days=10), 4)
    counted.add(WHEEL_2.filename, now - timedelta(days=45), 8)
    recent = counted.http.get("/_/stats/main/Stat.Me/recent")
    assert recent.status_code == 200, recent.text
    assert recent.headers["content-type"] == "application/json"
    assert recent.json() == {
        "data": {"last_day": 2, "last_week": 3, "last_month": 7},
        "package": "stat-me",
        "type": "recent_downloads",
    }
    assert counted.http.get("/_/stats/main/stat-me/recent?period=week").json()["data"] == {
        "last_week": 3
    }
    overall = counted.http.get("/_/stats/main/stat-me/overall")
    assert overall.status_code == 200
    days = [
        (now - timedelta(days=45)).isoformat(),
        (now - timedelta(days=10)).isoformat(),
        (now - timedelta(days=3)).isoformat(),
        now.isoformat(),
    ]
    rows = [
        {"category": category, "date": day, "downloads": count}
        for category in ("with_mirrors", "without_mirrors")
        for day, count in zip(days, (8, 4, 1, 2), strict=True)
    ]
    assert overall.json() == {"data": rows, "package": "stat-me", "type": "overall_downloads"}
    only = counted.http.get("/_/stats/main/stat-me/overall?mirrors=false").json()["data"]
    assert {row["category"] for row in only} == {"without_mirrors"} and len(only) == 4


def test_unknown_kinds_names_methods_and_parameters_get_reasons(counted: Counted) -> None:
    unknown = counted.http.get("/_/stats/main/stat-me/python_major")
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": "There are no statistics named 'python_major'; there are recent, overall."
    }
    missing = counted.http.get("/_/stats/main/nothing-here/recent")
    assert missing.status_code == 404
    assert missing.json() == {"error": "There is no project 'nothing-here' in index 'main'"}
    no_index = counted.http.get("/_/stats/nowhere/stat-me/recent")
    assert no_index.status_code == 404 and "nowhere" in no_index.json()["error"]
    for method in ("POST", "PUT", "DELETE"):
        refused = counted.http.request(method, "/_/stats/main/stat-me/recent")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD"
        assert "use GET, HEAD" in refused.text
    bad = counted.http.get("/_/stats/main/stat-me/recent?period=year")
    assert bad.status_code == 400 and "period must be" in bad.json()["error"]
    bad = counted.http.get("/_/stats/main/stat-me/overall?mirrors=maybe")
    assert bad.status_code == 400 and "mirrors must be" in bad.json()["error"]


def _download(private: Private) -> None:
    """One download of the private wheel, through tilsit, written to the counts."""
    path = "/sec/" + file_path(private.wheel.sha256, private.wheel.filename)
    response = private.http.get(path, headers=basic(private.owner_token))
    assert response.status_code == 200
    private.http.portal.call(private.app.downloads.flush)


URL = "/_/stats/sec/secret-tool/recent"
HIDDEN = {"error": "There is no project 'secret-tool' in index 'sec'"}


def test_private_counts_reach_only_those_who_may_read_the_project(private: Private) -> None:
    _download(private)
    db_url = private.instance.settings.db_url
    counts = {"last_day": 1, "last_week": 1, "last_month": 1}
    # Allowed: the Owner's token (basic or bearer), a reader by session, an admin.
    for headers in (basic(private.owner_token), bearer(private.owner_token)):
        allowed = private.http.get(URL, headers=headers)
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["data"] == counts
        assert "no-store" in allowed.headers["cache-control"]
    private.grant("reader", "read")
    reader = sign_in(db_url, private.http, "reader")
    assert reader.get(URL).json()["data"] == counts
    admin = sign_in(db_url, private.http, "root", admin=True)
    assert admin.get("/_/stats/sec/secret-tool/overall").status_code == 200

    # Refused, in the words of a project that does not exist: anonymous, another user
    # (session or token), a token limited to another index, a bad token.
    other = sign_in(db_url, private.http, "mallory")
    elsewhere = private.token("alice", index="main")
    answers = [
        private.http.get(URL),
        other.get(URL),
        other.get("/_/stats/sec/secret-tool/overall"),
        private.http.get(URL, headers=basic(private.token("mallory"))),
        private.http.get(URL, headers=bearer(private.token("mallory"))),
        private.http.get(URL, headers=basic(elsewhere)),
        private.http.get(URL, headers=bearer("pypi-not-a-token")),
    ]
    for answer in answers:
        assert (answer.status_code, answer.json()) == (404, HIDDEN), answer.text
    missing = private.http.get("/_/stats/sec/no-such-tool/recent")
    assert missing.status_code == 404
    assert missing.json() == {"error": "There is no project 'no-such-tool' in index 'sec'"}


@pytest.mark.parametrize("kind", ["recent", "overall"])
def test_a_public_index_answers_anyone_and_may_be_cached(counted: Counted, kind: str) -> None:
    answer = counted.http.get(f"/_/stats/main/stat-me/{kind}")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "public, max-age=300"
