"""A proxy of a pypiserver-, devpi- or plain-tree-shaped upstream keeps every fact clients use.

The page is listed before any file is fetched; fetching a wheel reads its
METADATA (the upload path's reader, under its caps) from the bytes on their way
to the store, so from then on the page offers ``.metadata`` with its hash and
``requires-python``, the legacy JSON has ``info`` and md5/blake2, and the upload
time is the upstream's or absent.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.proxy.conftest import Downstream, Proxy
from tests.proxy.test_files import eventually
from tests.upstream.fidelity import (
    ShapedIndex,
    check_json_page,
    check_legacy_json,
    check_unreadable,
    shaped_fixture,  # noqa: F401 - the fixture, by its name "shaped"
    wheel_metadata,
)
from tilsit.index.manage import create_index
from tilsit.instance import open_instance

_names = itertools.count()


def proxy_of(downstream: Downstream, upstream_simple_url: str) -> Proxy:
    """A new proxy index on the running downstream, of an upstream at any simple URL."""
    name = f"fid{next(_names)}"
    instance = open_instance(downstream.live.settings)
    try:
        with instance.db.write() as session:
            create_index(
                session, name, "proxy", actor="test", options={"upstream": upstream_simple_url}
            )
        instance.renderer.catch_up()
    finally:
        instance.close()
    return Proxy(downstream.live, name, downstream.log)


def _files(page: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["filename"]: f for f in page["files"]}


def test_a_proxy_reads_metadata_from_fetched_wheels_and_keeps_upstream_times(
    shaped: ShapedIndex, downstream: Downstream
) -> None:
    proxy = proxy_of(downstream, shaped.simple_url)
    before = proxy.page("fid-pkg")
    check_json_page(shaped, before, fetched=set())  # times as the upstream gave, or absent
    dists = shaped.dists["fid-pkg"]
    wheels = {d.filename for d in dists if d.filename.endswith(".whl")}

    for dist in dists:
        response = proxy.get(proxy.file_url(dist))
        assert response.status_code == 200, response.text
        assert response.content == dist.data

    def all_read() -> bool:
        files = _files(proxy.page("fid-pkg"))
        return all(files[w]["core-metadata"] for w in wheels)

    eventually(all_read, "the fetched wheels' METADATA linked into the page")
    after = proxy.page("fid-pkg")
    check_json_page(shaped, after, fetched=wheels)
    html = proxy.get("/simple/fid-pkg/", headers={"Accept": "text/html"}).text
    assert ("data-upload-time=" in html) is shaped.gives_times, html
    for filename in wheels:
        dist = shaped.dist(filename)
        served = proxy.get(proxy.file_url(dist) + ".metadata")
        assert served.status_code == 200
        assert served.content == wheel_metadata(dist)
    legacy = proxy.get("/pypi/fid-pkg/json")
    assert legacy.status_code == 200, legacy.text
    doc = json.loads(legacy.content)
    assert doc["info"]["summary"], doc
    check_legacy_json(shaped, doc, fetched={d.filename for d in dists})

    # Hostile input from the upstream: METADATA past the reader's cap. Served, noted.
    (bad,) = shaped.dists["fid-bad"]
    proxy.page("fid-bad")
    response = proxy.get(proxy.file_url(bad))
    assert response.status_code == 200
    assert response.content == bad.data
    eventually(
        lambda: proxy.logged(f"{bad.filename}: METADATA not readable"),
        "the unreadable METADATA logged",
    )
    eventually(lambda: proxy.in_tree(proxy.file_url(bad)), "the file cached")
    check_unreadable(proxy.page("fid-bad"))
