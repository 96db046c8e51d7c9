"""A host killed mid-upload or mid-sync: nothing acknowledged is lost, the others show no half state.

The hosts are killed with SIGKILL (no shutdown: the process ends where it is). Its
database connections end with it, so its cluster locks are free for the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import LiveServer, run_cli
from tests.hosts.conftest import Cluster, served, wait_for
from tests.hosts.upstream import CountingUpstream
from tests.uploads import form_for, upload
from tests.upstream.conftest import make_mirror
from tilsit.instance import open_instance

_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def kill(host: LiveServer) -> None:
    host.process.kill()
    host.process.wait(timeout=20)


def listed(url: str, project: str) -> dict[str, str]:
    """filename -> sha256 of the project's JSON page at ``url`` (empty when not served)."""
    page = httpx.get(f"{url}/simple/{project}/", headers=_JSON, timeout=10)
    if page.status_code == 404:
        return {}
    assert page.status_code == 200, page.text
    return {f["filename"]: f["hashes"]["sha256"] for f in page.json()["files"]}


def every_file_served(url: str, index: str, project: str) -> None:
    page = httpx.get(f"{url}/{index}/simple/{project}/", headers=_JSON, timeout=10)
    if page.status_code == 404:
        return  # not published: no half state either
    assert page.status_code == 200, page.text
    for entry in page.json()["files"]:
        link = httpx.URL(f"{url}/{index}/simple/{project}/").join(entry["url"])
        body = httpx.get(link, timeout=10)
        assert body.status_code == 200, (link, body.status_code)
        assert hashlib.sha256(body.content).hexdigest() == entry["hashes"]["sha256"]


def test_a_host_killed_mid_upload_loses_only_the_unanswered_upload(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    token = a.token()
    answered = make_wheel("kept-thing", "1.0")
    with httpx.Client(base_url=a.url, timeout=30) as http:
        assert upload(http, answered, token).status_code == 200
    # The answered upload is killed right after its 200: B still gets it.
    half = make_wheel("kept-thing", "2.0", members={"kept_thing/big.bin": b"x" * (4 << 20)})
    fields = form_for(half)
    boundary = "tilsit-crash-boundary"
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content";'
        f' filename="{half.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    sent = {"bytes": 0}

    def body() -> Iterator[bytes]:
        yield head
        for start in range(0, len(half.data), 64 << 10):
            if sent["bytes"] > len(half.data) // 2:
                kill(a)  # mid-body: the server never has the whole file
            yield half.data[start : start + (64 << 10)]
            sent["bytes"] += 64 << 10
        yield tail

    with pytest.raises(httpx.TransportError):
        httpx.post(
            f"{a.url}/legacy/",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            auth=("__token__", token),
            timeout=30,
        )
    assert a.process.poll() is not None
    wait_for(lambda: answered.filename in listed(b.url, "kept-thing"), timeout=10)
    assert listed(b.url, "kept-thing") == {answered.filename: answered.sha256}
    # The killed upload left nothing: the same file is accepted on B, and served.
    with httpx.Client(base_url=b.url, timeout=30) as http:
        again = upload(http, half, token)
    assert again.status_code == 200, again.text
    assert "already stored" not in again.text
    assert listed(b.url, "kept-thing") == {
        answered.filename: answered.sha256,
        half.filename: half.sha256,
    }
    # A, restarted, catches up with what B took meanwhile.
    a = cluster.restart(a)
    assert listed(a.url, "kept-thing") == listed(b.url, "kept-thing")


@pytest.fixture
def slow_pages(tmp_path: Path) -> Iterator[CountingUpstream]:
    names = [f"synced-{n}" for n in range(4)]
    upstream = CountingUpstream(
        tmp_path / "upstream", slow=tuple(f"/simple/{n}/" for n in names), delay=4.0
    )
    for name in names:
        upstream.tree.add(name, make_wheel(name, "1.0"))
    yield upstream
    upstream.stop()


def test_a_host_killed_mid_sync_leaves_no_half_state_and_another_host_takes_over(
    cluster: Cluster, slow_pages: CountingUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = open_instance(cluster.settings("a"))
    try:
        make_mirror(instance, f"{slow_pages.url}/simple/", interval=3600)
    finally:
        instance.close()
    a = cluster.start("a")  # its schedule starts the sync at once
    wait_for(lambda: slow_pages.in_flight > 0, timeout=30)
    kill(a)
    b = cluster.start("b")
    for n in range(4):
        every_file_served(b.url, "mirror", f"synced-{n}")
    # The killed host's lock went with its connection: B syncs now (its own schedule
    # or this command, whichever comes first; the other finds the sync busy).
    monkeypatch.setenv("TILSIT_BLOB_PATH", str(cluster.blobs))
    monkeypatch.setenv("TILSIT_TUF_SHARED", "true")
    result = run_cli(b.settings, "mirror", "sync", "mirror", check=False)
    assert result.returncode == 0 or "another" in result.stdout + result.stderr, result
    for n in range(4):
        wait_for(lambda n=n: served(f"{b.url}/mirror/simple/synced-{n}/"), timeout=60)
        every_file_served(b.url, "mirror", f"synced-{n}")
    a = cluster.restart(a)
    for n in range(4):
        page = f"/mirror/simple/synced-{n}/"
        assert httpx.get(a.url + page, headers=_JSON).json() == (
            httpx.get(b.url + page, headers=_JSON).json()
        )
