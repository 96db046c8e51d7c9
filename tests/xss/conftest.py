"""The XSS corpus, published once per module: hosted projects with hostile metadata in
every README format, a yanked release with a hostile reason, and a mirror of an
upstream whose metadata and yank reason are hostile, behind one live server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.browser.conftest import chromium, page  # noqa: F401
from tests.builders import make_wheel
from tests.conftest import LiveServer, create_database, start_server, stop
from tests.uploads import upload
from tests.upstream.conftest import make_mirror, sync
from tests.upstream.static import StaticServer, StaticTree
from tests.xss import corpus
from tilsit.config import Settings, load_settings
from tilsit.index.manage import get_index, set_yanked
from tilsit.instance import open_instance

# (project, Description-Content-Type, README body)
HOSTED: list[tuple[str, str | None, str]] = [
    ("xss-md", "text/markdown", corpus.MARKDOWN),
    ("xss-gfm", "text/markdown; variant=GFM", corpus.MARKDOWN),
    ("xss-commonmark", "text/markdown; variant=CommonMark", corpus.MARKDOWN),
    ("xss-rst", "text/x-rst", corpus.RST),
    ("xss-default", None, corpus.RST),  # no type: reStructuredText, as PyPI assumes
    ("xss-txt", "text/plain", corpus.PLAIN),
]
MIRRORED = "xss-up"


@dataclass
class Published:
    server: LiveServer
    settings: Settings
    token: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, postgres_base: str | None
) -> Iterator[Published]:
    root = tmp_path_factory.mktemp("xss")
    settings = load_settings(
        overrides={"data": root / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    tree = StaticTree(root / "upstream")
    body = corpus.metadata(MIRRORED, "1.0", "text/markdown", corpus.MARKDOWN)
    tree.add(
        MIRRORED,
        make_wheel(MIRRORED, "1.0", metadata=body),
        metadata=body,
        attrs={"data-yanked": corpus.YANK_REASON},
    )
    upstream = StaticServer(tree.root)
    instance = open_instance(settings)
    server = None
    try:
        make_mirror(instance, f"{upstream.url}/simple/")
        report = sync(instance)
        assert report.failures == 0, report
        server = start_server(settings, root / "server.log")
        token = server.token("alice")
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for name, content_type, readme in HOSTED:
                meta = corpus.metadata(name, "1.0", content_type, readme)
                response = upload(http, make_wheel(name, "1.0", metadata=meta), token)
                assert response.status_code == 200, response.text
        with instance.db.write() as session:
            index = get_index(session, "main")
            set_yanked(
                session,
                index,
                "xss-md",
                "1.0",
                yanked=True,
                reason=corpus.YANK_REASON,
                actor="alice",
            )
        instance.renderer.catch_up()
        yield Published(server, settings, token)
    finally:
        if server is not None:
            stop(server)
        instance.close()
        upstream.stop()
