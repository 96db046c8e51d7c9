"""bandersnatch, a real reader of the legacy JSON, mirrors a tilsit without base_url.

Without base_url the JSON's file URLs are root-relative (``/packages/…``): bandersnatch
prefixes its master URL to such a path, and requires the path to start with
``/packages``, so the fallback must keep that form (a document-relative
``../../../packages/…`` would fail it). bandersnatch speaks only https, so the
server runs with a certificate from a throwaway CA.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests import postgres
from tests.bandersnatch.conftest import Upstream
from tests.bandersnatch.test_bandersnatch import Bandersnatch, assert_mirror_matches
from tests.builders import make_sdist, make_wheel
from tests.conftest import create_database, start_server, stop
from tests.legacyjson.test_legacy_json import DOWNLOAD, FULL_METADATA, HOME, SOURCE
from tilsit.config import load_settings

pytestmark = pytest.mark.clients


@pytest.fixture
def relative_upstream(postgres_base: str | None, tmp_path: Path) -> Iterator[Upstream]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_pem, key_pem, ca_pem = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_pem))
    cert.private_key_pem.write_to_path(str(key_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    context = ssl.create_default_context(cafile=str(ca_pem))
    settings = load_settings(
        overrides={"data": tmp_path / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    log = tmp_path / "server.log"
    live = start_server(
        settings,
        log,
        "--tls-cert",
        str(cert_pem),
        "--tls-key",
        str(key_pem),
        env={"TILSIT_BASE_URL": ""},  # unset: root-relative URLs
        scheme="https",
        verify=context,
        port=postgres.free_port(),
    )
    try:
        yield Upstream(live, ca_pem, context, log)
    finally:
        stop(live)


def test_bandersnatch_mirrors_root_relative_urls(
    relative_upstream: Upstream, tmp_path: Path
) -> None:
    upstream = relative_upstream
    upstream.upload(
        make_wheel("legacy-json", "1.0", extra=FULL_METADATA),
        make_sdist("legacy-json", "1.0", extra=FULL_METADATA),
        make_wheel("legacy-json", "2.0", extra=FULL_METADATA),
    )
    with upstream.http() as client:
        document = client.get("/pypi/legacy-json/json").json()
    urls = [f["url"] for files in document["releases"].values() for f in files]
    assert len(urls) == 3 and all(u.startswith("/packages/") for u in urls), urls

    mirror = Bandersnatch(tmp_path / "bandersnatch", upstream)
    mirror.root.mkdir()
    mirror.run()
    assert_mirror_matches(upstream, mirror)
    # bandersnatch keeps the JSON it read: PyPI's keys, as tilsit served them.
    kept = json.loads((mirror.web / "json" / "legacy-json").read_text())
    assert kept["info"]["version"] == "2.0"
    assert kept["info"]["project_urls"] == {
        "Homepage": HOME,
        "Download": DOWNLOAD,
        "Source": SOURCE,
    }
    assert "vulnerabilities" not in kept
    with httpx.Client(verify=upstream.context) as client:
        assert client.get(f"{upstream.url}/_/health").json()["status"] == "ok"
