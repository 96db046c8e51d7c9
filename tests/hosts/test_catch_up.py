"""A file uploaded on one host is served by another within a bounded delay (journal_poll).

The other host is woken by the journal's notification (LISTEN/NOTIFY); with
notifications lost it still catches up by polling the journal.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from tests.builders import make_wheel
from tests.clients.tools import Sandbox, describe
from tests.hosts.conftest import Cluster, served, wait_for
from tests.uploads import upload
from tilsit.db.engine import Database
from tilsit.index.manage import get_index, set_yanked

_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def test_an_upload_on_one_host_is_served_by_the_other(cluster: Cluster, tmp_path: Path) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    token = a.token()
    dist = make_wheel("shared-thing", "1.0")
    with httpx.Client(base_url=a.url, timeout=30) as http:
        response = upload(http, dist, token)
    assert response.status_code == 200, response.text
    page = f"{b.url}/simple/shared-thing/"
    # Woken by the notification: far below the 2 s poll.
    delay = wait_for(lambda: served(page), timeout=10)
    print(f"upload on A served by B after {delay * 1000:.0f} ms")
    document = httpx.get(page, headers=_JSON, timeout=10).json()
    [entry] = document["files"]
    assert entry["filename"] == dist.filename
    assert entry["hashes"]["sha256"] == dist.sha256
    url = httpx.URL(page).join(entry["url"])
    body = httpx.get(url, timeout=10)
    assert body.status_code == 200
    assert hashlib.sha256(body.content).hexdigest() == dist.sha256
    # The same bytes on both hosts: the page carries the same serial and links.
    assert httpx.get(f"{a.url}/simple/shared-thing/", headers=_JSON).json() == document

    sandbox = Sandbox(tmp_path / "sandbox")
    venv = sandbox.venv()
    result = sandbox.run(
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--index-url",
        f"{b.url}/simple/",
        "shared-thing",
    )
    assert result.returncode == 0, describe(result)
    assert "Successfully installed shared-thing-1.0" in result.stdout, describe(result)


def test_a_lost_notification_is_made_up_by_polling(cluster: Cluster) -> None:
    cluster.extra_env = {"TILSIT_JOURNAL_POLL": "0.5"}
    a = cluster.start("a")
    b = cluster.start("b")
    token = a.token()
    dist = make_wheel("polled-thing", "1.0")
    with httpx.Client(base_url=a.url, timeout=30) as http:
        assert upload(http, dist, token).status_code == 200
    page = f"{b.url}/simple/polled-thing/"
    wait_for(lambda: served(page), timeout=10)
    # A yank committed without the notification (a plain session, not Database.write),
    # as if it had been lost: the hosts find it by polling the journal.
    db = Database(cluster.database_url)
    try:
        with Session(db.engine) as session:
            index = get_index(session, "main")
            set_yanked(session, index, "polled-thing", "1.0", yanked=True, reason="lost")
            session.commit()
    finally:
        db.dispose()

    def yanked() -> bool:
        [entry] = httpx.get(page, headers=_JSON, timeout=10).json()["files"]
        return entry.get("yanked") == "lost"

    delay = wait_for(yanked, timeout=10)
    print(f"a change without notification served by B after {delay * 1000:.0f} ms (poll 0.5 s)")


def test_a_host_behind_the_journal_shows_its_lag_in_metrics(cluster: Cluster) -> None:
    cluster.extra_env = {"TILSIT_HOST_NAME": "host-a"}
    a = cluster.start("a")
    # Host B does not follow the other hosts (journal_poll 0): it stays behind.
    cluster.extra_env = {"TILSIT_HOST_NAME": "host-b", "TILSIT_JOURNAL_POLL": "0"}
    b = cluster.start("b")
    token = a.token()
    with httpx.Client(base_url=a.url, timeout=30) as http:
        assert upload(http, make_wheel("lagging-thing", "1.0"), token).status_code == 200
    assert journal_lag(a.url) == {"host-a": 0}
    behind = journal_lag(b.url)
    assert list(behind) == ["host-b"] and behind["host-b"] >= 1


def journal_lag(url: str) -> dict[str, float]:
    answer = httpx.get(f"{url}/_/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    return {
        sample.labels["host"]: sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == "tilsit_journal_lag_serials"
    }
