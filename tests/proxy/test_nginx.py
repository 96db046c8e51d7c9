"""nginx in front of tilsit: a proxy index's pages and first fetches still reach tilsit."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.builders import make_wheel
from tests.conftest import stop_process
from tests.proxy.conftest import MakeProxy, Upstream
from tests.readpath.conftest import need_nginx, start_nginx
from tilsit.spec.simple import JSON


def test_nginx_sends_proxy_indexes_and_unfetched_files_to_tilsit(
    make_proxy: MakeProxy, upstream: Upstream, tmp_path: Path
) -> None:
    need_nginx()
    # A file of its own: the package's tests share one tree, and others fetch theirs.
    wheel = make_wheel("px-nginx", "1.0")
    upstream.upload(wheel)
    proxy = make_proxy(upstream.url)
    process, url = start_nginx(
        proxy.settings.tree_dir,
        urlsplit(proxy.url).netloc,
        tmp_path / "nginx",
        proxy_indexes=(proxy.index,),
        files_from_tilsit=proxy.settings.blob_store != "fs",  # as nginx-config prints it
    )
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            page = http.get(f"/{proxy.index}/simple/px-nginx/", headers={"Accept": JSON})
            assert page.status_code == 200, page.text
            files = {f["filename"]: f for f in page.json()["files"]}
            assert wheel.filename in files
            file_url = files[wheel.filename]["url"]
            # Not in the tree yet: nginx hands the miss to tilsit, which fetches it.
            assert not proxy.in_tree(file_url)
            first = http.get(file_url)
            assert first.status_code == 200
            assert hashlib.sha256(first.content).hexdigest() == wheel.sha256
            # tilsit links the file into the tree once stored (just after the response).
            deadline = time.monotonic() + 15
            while not proxy.in_tree(file_url) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proxy.in_tree(file_url)
            again = http.get(file_url)
            assert again.content == wheel.data
            assert again.headers["etag"] == f'"{wheel.sha256}"'
    finally:
        stop_process(process)


def test_nginx_serves_mirror_status(
    make_proxy: MakeProxy, upstream: Upstream, tmp_path: Path
) -> None:
    need_nginx()
    proxy = make_proxy(upstream.url)
    status = proxy.settings.tree_dir / "main" / "mirror-status.json"
    status.write_text('{"synced_serial": 7}')
    process, url = start_nginx(proxy.settings.tree_dir, None, tmp_path / "nginx")
    try:
        response = httpx.get(f"{url}/main/mirror-status.json")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-cache"
        assert response.json() == {"synced_serial": 7}
        assert httpx.get(f"{url}/nope/mirror-status.json").status_code == 404
    finally:
        status.unlink()
        stop_process(process)
