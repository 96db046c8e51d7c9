"""Hostile upstreams against a live tilsit: hashes as a way in, redirects, unbounded bodies.

One tilsit server for the module, holding a private hosted index ``sec`` with one
uploaded wheel, and one :class:`~tests.upstream.hostile.HostileServer` that each
test tells what to serve. Each test adds its own proxy or mirror index of that
hostile server (an index costs milliseconds; a server, seconds). The server runs
with small caps (``upstream_page_max_size`` 1 MiB, ``max_upload_size`` 2 MiB), so
what a hostile upstream sends past them costs the test little memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.blobs import blob_stored
from tests.builders import Dist, make_wheel
from tests.conftest import LiveServer, create_database, start_server, stop
from tests.uploads import upload
from tests.upstream.conftest import Notes
from tests.upstream.hostile import (
    Answer,
    HostileServer,
    endless,
    gzip_bomb,
    page,
    redirect,
    root,
)
from tilsit.config import MiB, load_settings
from tilsit.config.origins import parse_origins
from tilsit.db.models import FileRow, IndexRow, UpstreamStateRow
from tilsit.index.manage import create_index, get_index
from tilsit.index.permissions import set_visibility
from tilsit.instance import Instance, open_instance
from tilsit.store.tree import file_path
from tilsit.upstream.client import UpstreamClient
from tilsit.upstream.errors import RedirectRefused
from tilsit.upstream.sync import sync_mirror

JSON = "application/vnd.pypi.simple.v1+json"
_DIRECT = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
PAGE_CAP = 1 * MiB
FILE_CAP = 2 * MiB
_names = itertools.count()


@dataclass
class Rig:
    live: LiveServer
    log: Path
    instance: Instance
    hostile: HostileServer
    secret: Dist  # uploaded to the private index "sec"

    def index(self, kind: str, **options: Any) -> str:
        """A new ``kind`` (proxy or mirror) index whose upstream is the hostile server."""
        name = f"{kind[0]}x{next(_names)}"
        with self.instance.db.write() as session:
            create_index(
                session,
                name,
                kind,
                actor="test",
                options={"upstream": f"{self.hostile.url}/simple/", "timeout": 10, **options},
            )
        self.instance.renderer.catch_up()
        return name

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Accept": JSON, **kwargs.pop("headers", {})}
        return httpx.get(f"{self.live.url}{path}", headers=headers, timeout=60, **kwargs)

    def in_tree(self, relative: str) -> bool:
        return (self.live.settings.tree_dir / relative).is_file()

    def files_of(self, index: str) -> list[FileRow]:
        with self.instance.db.read() as session:
            rows = session.scalars(
                select(FileRow).join(IndexRow).where(IndexRow.name == index)
            ).all()
            for row in rows:
                session.expunge(row)
            return list(rows)

    def sync(self, index: str) -> Notes:
        notes = Notes()
        asyncio.run(
            sync_mirror(self.instance, index, workers=2, attempts=1, backoff=0, reporter=notes)
        )
        return notes

    def download(self, path: str) -> bytes:
        """What a GET of ``path`` delivers, whole or cut short."""
        received = b""
        try:
            with httpx.stream("GET", f"{self.live.url}{path}", timeout=60) as streamed:
                for chunk in streamed.iter_bytes():
                    received += chunk
        except httpx.RemoteProtocolError:
            pass
        return received

    def serves_others(self) -> None:
        """The server still answers: health, and the private index for its owner."""
        assert self.get("/_/health").status_code == 200
        assert self.get("/simple/").status_code == 200


@pytest.fixture(scope="module")
def rig(postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root_dir = tmp_path_factory.mktemp("hostile")
    settings = load_settings(
        overrides={
            "data": root_dir / "data",
            "database_url": create_database(postgres_base),
            "upstream_page_max_size": PAGE_CAP,
            "max_upload_size": FILE_CAP,
        },
        environ={},
    )
    env = {
        **_DIRECT,
        "TILSIT_UPSTREAM_PAGE_MAX_SIZE": str(PAGE_CAP),
        "TILSIT_MAX_UPLOAD_SIZE": str(FILE_CAP),
    }
    log = root_dir / "server.log"
    live = start_server(settings, log, env=env)
    instance = open_instance(settings)
    hostile = HostileServer().start()
    secret = make_wheel(
        "secret-tool",
        "1.0",
        members={"secret_tool/key.txt": b"hunter2\n" * 64},
        requires_dist=["internal-credentials-vault>=1"],
    )
    try:
        with instance.db.write() as session:
            create_index(session, "sec", actor="test")
        instance.renderer.catch_up()
        with httpx.Client(base_url=live.url, timeout=60) as client:
            response = upload(client, secret, live.token(), "/sec/legacy/")
        assert response.status_code == 200, response.text
        with instance.db.write() as session:
            set_visibility(session, get_index(session, "sec"), private=True, actor_name="test")
        instance.renderer.catch_up()
        yield Rig(live, log, instance, hostile, secret)
    finally:
        hostile.stop()
        instance.close()
        stop(live)


def _impostor(rig: Rig, name: str) -> bytes:
    """The hostile page of ``name``: it lists the private wheel's sha256, served from itself."""
    secret = rig.secret
    own = b"\0" * len(secret.data)  # its own bytes: the private hash cannot match them
    url = f"{rig.hostile.url}/files/{name}/{secret.filename}"
    rig.hostile.routes[f"/files/{name}/{secret.filename}"] = page_bytes(own)
    rig.hostile.routes[f"/simple/{name}/"] = page(
        name,
        [
            {
                "filename": secret.filename,
                "url": url,
                "hashes": {"sha256": secret.sha256},
                "size": len(secret.data),
            }
        ],
    )
    return own


def page_bytes(data: bytes) -> Answer:
    return Answer(200, {"content-type": "application/octet-stream"}, data)


# -- item 3: a hash is not a way in ---------------------------------------------------


def test_proxy_never_serves_a_private_blob_for_a_listed_hash(rig: Rig) -> None:
    secret = rig.secret
    shared = file_path(secret.sha256, secret.filename)
    assert not rig.in_tree(shared)  # private: under /sec/packages/ only
    assert rig.get(f"/{shared}").status_code == 404
    proxy = rig.index("proxy")
    own = _impostor(rig, "secret-tool")

    listed = rig.get(f"/{proxy}/simple/secret-tool/")
    assert listed.status_code == 200, listed.text
    assert [f["hashes"]["sha256"] for f in listed.json()["files"]] == [secret.sha256]
    (row,) = rig.files_of(proxy)
    assert not row.cached  # listed, never fetched: the stored private blob is not its

    # A plain GET streams while fetching; the mismatch cuts it before its last byte.
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("GET", f"{rig.live.url}/{shared}", timeout=60) as streamed,
    ):
        for chunk in streamed.iter_bytes():
            received += chunk
    assert received != secret.data
    assert received == b"\0" * (len(secret.data) - 1)  # the upstream's bytes, never the blob
    assert rig.hostile.asked(f"/files/secret-tool/{secret.filename}")  # it was fetched
    # A range fetches whole first, then answers: the upstream's bytes are refused.
    ranged = rig.get(f"/{shared}", headers={"Range": "bytes=0-"})
    assert ranged.status_code == 502, ranged.text
    assert f"sha256 {hashlib.sha256(own).hexdigest()}" in ranged.text
    assert not rig.in_tree(shared)
    (row,) = rig.files_of(proxy)
    assert not row.cached
    rig.serves_others()


def test_mirror_fetches_and_refuses_instead_of_reusing_a_private_blob(rig: Rig) -> None:
    secret = rig.secret
    shared = file_path(secret.sha256, secret.filename)
    mirror = rig.index("mirror")
    _impostor(rig, "secret-tool")
    rig.hostile.routes["/simple/"] = root("secret-tool")
    before = len(rig.hostile.asked(f"/files/secret-tool/{secret.filename}"))

    notes = rig.sync(mirror)

    assert any("secret-tool: FAILED" in line and "sha256" in line for line in notes.lines), (
        notes.lines
    )
    assert len(rig.hostile.asked(f"/files/secret-tool/{secret.filename}")) > before
    assert rig.files_of(mirror) == []  # nothing applied
    assert not rig.in_tree(shared)
    assert rig.download(f"/{shared}") != secret.data
    rig.serves_others()


def test_a_listed_core_metadata_hash_does_not_publish_private_metadata(rig: Rig) -> None:
    """The same through ``.metadata``: the tree, the legacy JSON, the proxy and the mirror."""
    with rig.instance.db.read() as session:
        private_meta = session.scalars(
            select(FileRow.metadata_sha256).join(IndexRow).where(IndexRow.name == "sec")
        ).one()
    assert private_meta is not None
    leaked = b"internal-credentials-vault"
    name = "meta-leak"
    wheel = make_wheel(name, "1.0")
    here = f"/files/{wheel.filename}"
    rig.hostile.routes[here] = page_bytes(wheel.data)
    rig.hostile.routes[f"{here}.metadata"] = page_bytes(b"Metadata-Version: 2.1\nName: x\n\n")
    rig.hostile.routes[f"/simple/{name}/"] = page(
        name,
        [
            {
                "filename": wheel.filename,
                "url": f"{rig.hostile.url}{here}",
                "hashes": {"sha256": wheel.sha256},
                "size": len(wheel.data),
                "core-metadata": {"sha256": private_meta},
            }
        ],
    )
    proxy = rig.index("proxy")
    listed = rig.get(f"/{proxy}/simple/{name}/")
    assert listed.status_code == 200, listed.text
    shared = file_path(wheel.sha256, wheel.filename) + ".metadata"
    assert not rig.in_tree(shared)
    legacy = rig.get(f"/{proxy}/pypi/{name}/json")
    assert legacy.status_code == 200, legacy.text
    assert leaked not in legacy.content
    assert leaked not in rig.download(f"/{shared}")
    ranged = rig.get(f"/{shared}", headers={"Range": "bytes=0-"})
    assert ranged.status_code == 502 and "sha256" in ranged.text, ranged.text
    assert rig.hostile.asked(f"{here}.metadata")
    assert not rig.in_tree(shared)

    mirror = rig.index("mirror")
    rig.hostile.routes["/simple/"] = root(name)
    notes = rig.sync(mirror)
    assert any(line.startswith(f"{name}: FAILED") and "sha256" in line for line in notes.lines)
    assert rig.files_of(mirror) == []
    rig.serves_others()


# -- item 4: redirects to another origin -------------------------------------------------


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[HostileServer]:
    """A second server: another origin (same host, another port)."""
    server = HostileServer().start()
    yield server
    server.stop()


def test_a_page_redirected_to_another_origin_is_not_found(
    rig: Rig, elsewhere: HostileServer
) -> None:
    proxy = rig.index("proxy", auth={"username": "corp", "password": "s3cret"})
    other = make_wheel("moved-away", "1.0")
    elsewhere.routes["/simple/moved-away/"] = page(
        "moved-away",
        [
            {
                "filename": other.filename,
                "url": f"{elsewhere.url}/files/{other.filename}",
                "hashes": {"sha256": other.sha256},
                "size": len(other.data),
            }
        ],
    )
    rig.hostile.routes["/simple/moved-away/"] = redirect(f"{elsewhere.url}/simple/moved-away/")

    response = rig.get(f"/{proxy}/simple/moved-away/")

    assert response.status_code == 404, response.text
    assert not elsewhere.asked("/simple/moved-away/")
    assert rig.files_of(proxy) == []
    assert f"redirect to {elsewhere.url}/simple/moved-away/ not followed" in rig.log.read_text()
    # The request that was redirected carried the credentials; nothing reached the other host.
    (asked,) = rig.hostile.asked("/simple/moved-away/")
    assert asked.headers["authorization"].startswith("Basic ")
    rig.serves_others()


def test_a_mirror_root_redirected_to_another_origin_fails_the_sync(
    rig: Rig, elsewhere: HostileServer
) -> None:
    mirror = rig.index("mirror", upstream=f"{rig.hostile.url}/moved/simple/")
    elsewhere.routes["/simple/"] = root("moved-away")
    rig.hostile.routes["/moved/simple/"] = redirect(f"{elsewhere.url}/simple/", 301)
    rig.sync(mirror)
    with rig.instance.db.read() as session:
        state = session.get(UpstreamStateRow, get_index(session, mirror).id)
        assert state is not None and state.last_error is not None
        assert "redirected to" in state.last_error and "another origin" in state.last_error
    assert not elsewhere.asked("/simple/")


def test_a_file_redirected_to_an_untrusted_origin_is_refused(
    rig: Rig, elsewhere: HostileServer
) -> None:
    proxy = rig.index("proxy", auth={"username": "corp", "password": "s3cret"})
    name = "redirected-file"
    wheel = make_wheel(name, "1.0")
    here = f"/files/{wheel.filename}"
    rig.hostile.routes[f"/simple/{name}/"] = page(
        name,
        [
            {
                "filename": wheel.filename,
                "url": f"{rig.hostile.url}{here}",
                "hashes": {"sha256": wheel.sha256},
                "size": len(wheel.data),
            }
        ],
    )
    rig.hostile.routes[here] = redirect(f"{elsewhere.url}{here}", 302)
    elsewhere.routes[here] = page_bytes(wheel.data)
    assert rig.get(f"/{proxy}/simple/{name}/").status_code == 200

    shared = file_path(wheel.sha256, wheel.filename)
    response = rig.get(f"/{shared}", headers={"Range": "bytes=0-"})

    assert response.status_code == 502, response.text
    assert "not trusted for files" in response.text
    assert not elsewhere.asked(here)
    assert not rig.in_tree(shared)
    rig.serves_others()


def test_files_follow_trusted_origins_without_the_credentials(
    rig: Rig, elsewhere: HostileServer
) -> None:
    """The client alone: a redirect to a trusted file origin is followed, anonymously."""
    data = b"trusted bytes\n" * 100
    rig.hostile.routes["/simple/files/t.whl"] = redirect(f"{elsewhere.url}/cdn/t.whl", 302)
    rig.hostile.routes["/simple/files/u.whl"] = redirect(f"{elsewhere.url}/cdn/t.whl", 302)
    elsewhere.routes["/cdn/t.whl"] = page_bytes(data)

    async def go() -> tuple[bytes, str]:
        trusting = UpstreamClient(
            f"{rig.hostile.url}/simple/",
            auth=("corp", "s3cret"),
            file_origins=parse_origins(f"{elsewhere.url}, https://files.example"),
        )
        async with (
            trusting as client,
            client.stream_file(client.url("files/t.whl"), limit=len(data)) as stream,
        ):
            got = b"".join([chunk async for chunk in stream])
        async with UpstreamClient(f"{rig.hostile.url}/simple/", auth=("corp", "s")) as client:
            with pytest.raises(RedirectRefused) as refused:
                async with client.stream_file(client.url("files/u.whl"), limit=len(data)):
                    pass
        return got, str(refused.value)

    got, refusal = asyncio.run(go())
    assert got == data
    (fetched,) = elsewhere.asked("/cdn/t.whl")
    assert "authorization" not in fetched.headers
    assert rig.hostile.asked("/simple/files/t.whl")[0].headers["authorization"].startswith("Basic")
    assert f"redirected to {elsewhere.url}/cdn/t.whl" in refusal
    assert len(elsewhere.asked("/cdn/t.whl")) == 1  # the refused one never went there
    with pytest.raises(ValueError, match="not an origin"):
        parse_origins("https://files.example/path")


# -- item 5: every upstream body is capped ------------------------------------------------


def _peak_rss(rig: Rig) -> int:
    """The server process's peak resident memory, in bytes (Linux)."""
    status = Path(f"/proc/{rig.live.process.pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) * 1024


def _no_temp_left(rig: Rig) -> None:
    tmp = rig.live.settings.tmp_dir
    assert not (list(tmp.glob("proxy-*")) if tmp.is_dir() else [])


def _padded(answer: Answer, size: int) -> Answer:
    """A valid page made ``size`` bytes longer by a field clients ignore."""
    assert isinstance(answer.body, bytes)
    document = json.loads(answer.body)
    document["padding"] = "x" * size
    return Answer(answer.status, answer.headers, json.dumps(document).encode())


@pytest.mark.parametrize(
    ("name", "answer", "reason"),
    [
        (
            "huge",
            lambda: _padded(page("huge", []), PAGE_CAP + 10),
            "upstream_page_max_size",
        ),
        ("endless", lambda: endless(), "upstream_page_max_size"),
        ("bomb", lambda: gzip_bomb(64 << 30), "compression bomb"),
    ],
)
def test_a_page_past_its_cap_fails_that_project_only(
    rig: Rig, name: str, answer: Any, reason: str
) -> None:
    proxy = rig.index("proxy")
    rig.hostile.routes[f"/simple/{name}/"] = answer()

    response = rig.get(f"/{proxy}/simple/{name}/")

    assert response.status_code == 502, response.text
    assert reason in response.text
    assert rig.files_of(proxy) == []
    assert not rig.in_tree(f"{proxy}/simple/{name}/index.v1.json")
    assert _peak_rss(rig) < 600 * MiB
    rig.serves_others()

    mirror = rig.index("mirror")
    rig.hostile.routes["/simple/"] = root(name)
    notes = rig.sync(mirror)
    assert any(line.startswith(f"{name}: FAILED") and reason in line for line in notes.lines), (
        notes.lines
    )
    assert rig.files_of(mirror) == []


@pytest.mark.parametrize("kind", ["endless", "bomb"])
def test_a_file_past_its_cap_is_refused_and_not_stored(rig: Rig, kind: str) -> None:
    name = f"capped-{kind}"
    wheel = make_wheel(name, "1.0")
    here = f"/files/{wheel.filename}"
    # No size on the page: the cap is max_upload_size (2 MiB here).
    listed = {"filename": wheel.filename, "url": f"{rig.hostile.url}{here}"}
    rig.hostile.routes[f"/simple/{name}/"] = page(
        name, [{**listed, "hashes": {"sha256": wheel.sha256}}]
    )
    rig.hostile.routes[here] = (
        endless(content_type="application/octet-stream")
        if kind == "endless"
        else gzip_bomb(64 << 30, content_type="application/octet-stream")
    )
    proxy = rig.index("proxy")
    assert rig.get(f"/{proxy}/simple/{name}/").status_code == 200
    shared = file_path(wheel.sha256, wheel.filename)

    response = rig.get(f"/{shared}", headers={"Range": "bytes=0-"})

    assert response.status_code == 502, response.text
    assert f"more than the {FILE_CAP} bytes allowed" in response.text
    assert not rig.in_tree(shared)
    assert not blob_stored(rig.live.settings, wheel.sha256)
    _no_temp_left(rig)
    assert _peak_rss(rig) < 600 * MiB
    rig.serves_others()

    mirror = rig.index("mirror")
    rig.hostile.routes["/simple/"] = root(name)
    notes = rig.sync(mirror)
    failed = [line for line in notes.lines if line.startswith(f"{name}: FAILED")]
    assert failed and f"more than the {FILE_CAP} bytes allowed" in failed[0], notes.lines
    assert rig.files_of(mirror) == []
