"""/_/metrics on a real `tilsit serve`: counters move with real requests; access is refused."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LiveServer, start_server, stop
from tilsit.config import Settings


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
