"""A mirror's index page shows its freshness; a stale mirror is marked there and on the home
page (tilsit.upstream.staleness)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from tests.builders import make_wheel
from tests.conftest import AppClient, stop
from tests.upstream.conftest import make_mirror, start_upstream, sync
from tilsit.db.models import IndexRow, UpstreamStateRow
from tilsit.instance import Instance

_STALE_ON_HOME = re.compile(
    r'href="/(?P<name>[^/]+)/">[^<]+</a>(?: <span class="tag">private</span>)? <span class="tag tag-bad"'
)


def stale_on_home(client: AppClient) -> set[str]:
    return {m["name"] for m in _STALE_ON_HOME.finditer(client.get("/").text)}


def fact(html: str, name: str) -> str:
    match = re.search(rf"<dt>{name}</dt><dd>(.*?)</dd>", html)
    assert match, name
    return re.sub(r"<[^>]+>", "", match[1])


def test_mirror_freshness_panel_and_stale_mark(
    client: AppClient, instance: Instance, tmp_path: Path, postgres_base: str | None
) -> None:
    (tmp_path / "upstream").mkdir()
    upstream = start_upstream(tmp_path / "upstream", postgres_base)
    try:
        upstream.upload(make_wheel("mirrored", "1.0"), make_wheel("mirrored", "1.1"))
        make_mirror(instance, upstream.simple_url, interval=3600)
        make_mirror(instance, upstream.simple_url, name="never")
        assert sync(instance).ok
        with instance.db.read() as db:
            mirror = db.scalars(select(IndexRow).where(IndexRow.name == "mirror")).one()
            state = db.get(UpstreamStateRow, mirror.id)
            assert state is not None and state.synced_serial
            serial = state.synced_serial

        html = client.get("/mirror/").text
        assert fact(html, "Kind") == "mirror"
        assert fact(html, "Upstream") == upstream.simple_url
        assert fact(html, "Upstream serial") == str(serial)
        assert fact(html, "Synced serial") == str(serial)
        assert fact(html, "Lag").startswith("0 serials behind; last success")
        assert fact(html, "Last error") == "none"
        assert fact(html, "Stale after") == "2 hours without a successful sync"
        assert 'href="/mirror/project/mirrored/"' in html
        assert "This mirror is stale" not in html
        assert stale_on_home(client) == {"never"}
        assert "It has never synced successfully." in client.get("/never/").text

        # The upstream goes away: the failure is shown, the mirror is not stale yet.
        stop(upstream.live)
        assert not sync(instance, attempts=1).ok
        html = client.get("/mirror/").text
        assert fact(html, "Last error") != "none"
        assert "This mirror is stale" not in html
        assert stale_on_home(client) == {"never"}

        # Its last success falls behind twice the interval: stale, here and on the home page.
        with instance.db.write() as db:
            row = db.get(UpstreamStateRow, mirror.id)
            assert row is not None
            row.last_success = datetime.now(UTC) - timedelta(hours=3)
        html = client.get("/mirror/").text
        assert (
            "<strong>This mirror is stale.</strong> Its last successful sync is older than 2 hours."
            in html
        )
        assert '<h1>Index mirror <span class="tag tag-bad">stale</span></h1>' in html
        assert fact(html, "Lag").endswith("last success 3 hours ago")
        assert stale_on_home(client) == {"mirror", "never"}
    finally:
        if upstream.live.process.poll() is None:
            stop(upstream.live)
