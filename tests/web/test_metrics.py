"""/_/metrics on a real `tilsit serve`: counters move with real requests; access is refused."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from tests.builders import make_wheel
from tests.conftest import AppClient, LiveServer, start_server, stop
from tests.upstream.conftest import make_mirror, start_upstream, sync
from tilsit.config import Settings
from tilsit.db.models import IndexRow, JournalRow, UpstreamStateRow
from tilsit.instance import Instance


def samples(url: str, **kwargs: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(f"{url}/_/metrics", timeout=10, **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 200, answer.text
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_requests_counted_by_route_class(live_server: LiveServer) -> None:
    before = samples(live_server.url)
    for _ in range(3):
        httpx.get(f"{live_server.url}/simple/", timeout=10)
    httpx.get(f"{live_server.url}/nosuch/simple/absent/", timeout=10)
    after = samples(live_server.url)
    key = ("tilsit_requests_total", (("route", "simple"), ("status", "200")))
    assert after[key] - before.get(key, 0) == 3
    missing = ("tilsit_requests_total", (("route", "simple"), ("status", "404")))
    assert after[missing] - before.get(missing, 0) == 1
    count = ("tilsit_request_seconds_count", (("route", "simple"),))
    assert after[count] - before.get(count, 0) == 4
    # The raw path never becomes a label.
    assert not any("absent" in value for _, labels in after for _, value in labels)


def test_forwarded_request_refused(live_server: LiveServer) -> None:
    answer = httpx.get(
        f"{live_server.url}/_/metrics", headers={"x-forwarded-for": "203.0.113.9"}, timeout=10
    )
    # uvicorn takes the forwarded address as the client's (a proxy on loopback is trusted):
    # either way, a scrape from elsewhere through the proxy is not a loopback scrape.
    assert answer.status_code == 403
    assert "Forbidden" in answer.text and "metrics_access" in answer.text


def test_token_access(settings: Settings, tmp_path: Path) -> None:
    server = start_server(
        settings,
        tmp_path / "server.log",
        env={"TILSIT_METRICS_ACCESS": "token", "TILSIT_METRICS_TOKEN": "s3cret-scrape"},
    )
    try:
        missing = httpx.get(f"{server.url}/_/metrics", timeout=10)
        assert missing.status_code == 401
        assert "bearer token" in missing.text
        wrong = httpx.get(
            f"{server.url}/_/metrics", headers={"authorization": "Bearer nope"}, timeout=10
        )
        assert wrong.status_code == 401
        found = samples(server.url, headers={"authorization": "Bearer s3cret-scrape"})
        assert any(name == "tilsit_request_seconds_count" for name, _ in found)
    finally:
        stop(server)


def test_tuf_expiry_per_role(live_server: LiveServer) -> None:
    found = samples(live_server.url)
    expiries = {labels: value for (name, labels), value in found.items() if "tuf_expiry" in name}
    assert expiries[(("index", "*"), ("role", "root"))] > 86400
    assert expiries[(("index", "main"), ("role", "timestamp"))] > 0
    assert (("index", "main"), ("role", "snapshot")) in expiries


def test_refused_upload_counted_by_reason(live_server: LiveServer) -> None:
    before = samples(live_server.url)
    answer = httpx.post(f"{live_server.url}/legacy/", data={":action": "file_upload"}, timeout=10)
    assert answer.status_code == 401, answer.text
    after = samples(live_server.url)
    key = ("tilsit_uploads_total", (("outcome", "unauthenticated"),))
    assert after[key] - before.get(key, 0) == 1


def _gauges(client: AppClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    answer = client.get("/_/metrics")
    assert answer.status_code == 200, answer.text
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == name
    }


def test_journal_lag_of_this_host(client: AppClient, instance: Instance) -> None:
    host = (("host", socket.gethostname()),)
    with instance.db.read() as session:
        newest = int(session.scalar(select(func.max(JournalRow.serial))) or 0)
    assert newest > 0  # the default index's creation is in the journal
    assert _gauges(client, "tilsit_journal_lag_serials") == {host: 0}
    assert _gauges(client, "tilsit_rendered_serial") == {host: newest}
    # A tree two serials behind the journal (a host that has not caught up yet).
    instance.tree.set_serial(newest - 2)
    assert _gauges(client, "tilsit_journal_lag_serials") == {host: 2}


def test_mirror_lag_and_last_success(
    client: AppClient, instance: Instance, tmp_path: Path, postgres_base: str | None
) -> None:
    (tmp_path / "upstream").mkdir()
    upstream = start_upstream(tmp_path / "upstream", postgres_base)
    try:
        upstream.upload(make_wheel("mirrored", "1.0"))
        make_mirror(instance, upstream.simple_url, interval=3600)
        make_mirror(instance, upstream.simple_url, name="never")
        before = time.time()
        assert sync(instance).ok
    finally:
        stop(upstream.live)
    assert _gauges(client, "tilsit_mirror_lag_serials") == {(("index", "mirror"),): 0}
    success = _gauges(client, "tilsit_mirror_last_success_timestamp_seconds")
    assert set(success) == {(("index", "mirror"),)}  # "never" has no success to show
    assert before - 5 <= success[(("index", "mirror"),)] <= time.time() + 5
    # The upstream listed serials the mirror has not put in place (a sync cut short).
    with instance.db.write() as session:
        mirror = session.scalars(select(IndexRow).where(IndexRow.name == "mirror")).one()
        state = session.get(UpstreamStateRow, mirror.id)
        assert state is not None and state.synced_serial is not None
        state.upstream_serial = state.synced_serial + 7
    assert _gauges(client, "tilsit_mirror_lag_serials") == {(("index", "mirror"),): 7}


def test_workers_counters_summed(settings: Settings, tmp_path: Path) -> None:
    """With two workers, a scrape (answered by either) sums both workers' counters."""
    server = start_server(settings, tmp_path / "server.log", "--workers", "2")
    try:
        directory = settings.tmp_dir / "metrics"
        made = 0
        # New connections until each worker has answered some (the kernel picks which).
        while made < 400 and len({p.name for p in directory.glob("counter_*.db")}) < 2:
            for _ in range(10):
                answer = httpx.get(f"{server.url}/simple/", timeout=10)
                assert answer.status_code == 200
                made += 1
        assert len(list(directory.glob("counter_*.db"))) == 2, f"one worker took {made} requests"
        key = ("tilsit_requests_total", (("route", "simple"), ("status", "200")))
        for _ in range(3):  # whichever worker answers the scrape, the sum is the same
            assert samples(server.url)[key] == made
        count = ("tilsit_request_seconds_count", (("route", "simple"),))
        assert samples(server.url)[count] == made
    finally:
        stop(server)
