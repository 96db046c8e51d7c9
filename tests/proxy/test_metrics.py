"""/_/metrics of a proxy index: each page or file request a hit or a miss, by index."""

from __future__ import annotations

from tests.builders import make_wheel
from tests.proxy.conftest import MakeProxy, Upstream
from tests.proxy.front import Front
from tests.web.test_metrics import samples


def _count(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], **labels: str) -> float:
    key = ("tilsit_proxy_requests_total", tuple(sorted(labels.items())))
    return found.get(key, 0)


def test_hits_and_misses_by_index(upstream: Upstream, front: Front, make_proxy: MakeProxy) -> None:
    wheel = make_wheel("px-metrics", "1.0")  # a file of its own: no other test fetched it
    upstream.upload(wheel)
    proxy = make_proxy(front.url)
    before = samples(proxy.url)
    proxy.page("px-metrics")  # fetched: a miss
    proxy.page("px-metrics")  # within the TTL: a hit
    answer = proxy.get(proxy.file_url(wheel))  # fetched on first request: a miss
    assert answer.status_code == 200 and answer.content == wheel.data
    after = samples(proxy.url)
    index = proxy.index
    for what, result, added in (("page", "miss", 1), ("page", "hit", 1), ("file", "miss", 1)):
        labels = {"index": index, "what": what, "result": result}
        assert _count(after, **labels) - _count(before, **labels) == added, labels
    # The misses are what the upstream was asked: one page, one file.
    assert len(front.requests("/px-metrics/")) == 1
    assert len(front.requests(wheel.filename)) == 1
    # Never a project or a path in a label.
    assert not any("px-metrics" in value for _, labels in after for _, value in labels)
