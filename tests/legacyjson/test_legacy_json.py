"""The legacy JSON API as PyPI's readers expect it, read from a live server.

Every key is checked against the shape of PyPI's (warehouse ``legacy/api/json.py``),
on a server with ``base_url`` set (absolute URLs) and on one without (root-relative
URLs, resolved against the JSON's own URL, and a warning for the operator). The
uploads are real wheels and sdists whose metadata has Home-page, Download-URL,
Project-URL, Keywords and Platform.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests import postgres
from tests.builders import Dist, make_sdist, make_wheel
from tests.conftest import LiveServer, create_database, start_server, stop
from tests.uploads import upload
from tilsit.config import load_settings
from tilsit.render import legacy
from tilsit.render.snapshot import FileSnap, ProjectSnap, ReleaseSnap

HOME = "https://example.org/legacy-json"
DOWNLOAD = "https://example.org/legacy-json/download"
SOURCE = "https://example.org/legacy-json/src"
FULL_METADATA = [
    ("Home-page", HOME),
    ("Download-URL", DOWNLOAD),
    # Repeats of Home-page and Download-URL under labels that mean the same: PyPI
    # drops them, keeping its own "Homepage" and "Download" entries.
    ("Project-URL", f"Homepage, {HOME}"),
    ("Project-URL", f"Download-URL, {DOWNLOAD}"),
    ("Project-URL", f"Source, {SOURCE}"),
    ("Keywords", "alpha, beta,gamma"),
    ("Platform", "linux"),
    ("Platform", "macos"),
    ("Author", "Ada"),
    ("License", "MIT"),
]

# PyPI's keys (warehouse legacy/api/json.py); "vulnerabilities" is left out on purpose.
INFO_KEYS = {
    "author", "author_email", "bugtrack_url", "classifiers", "description",
    "description_content_type", "docs_url", "download_url", "downloads", "dynamic",
    "home_page", "keywords", "license", "license_expression", "license_files", "maintainer",
    "maintainer_email", "name", "package_url", "platform", "project_url", "project_urls",
    "provides_extra", "release_url", "requires_dist", "requires_python", "summary",
    "version", "yanked", "yanked_reason",
}  # fmt: skip
FILE_KEYS = {
    "comment_text", "digests", "downloads", "filename", "has_sig", "md5_digest",
    "packagetype", "python_version", "requires_python", "size", "upload_time",
    "upload_time_iso_8601", "url", "yanked", "yanked_reason",
    "core-metadata",  # PEP 691's key, which bandersnatch reads from PyPI's legacy JSON too
}  # fmt: skip
LEGACY_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def _dists() -> dict[str, Dist]:
    wheel = make_wheel("legacy-json", "1.0", requires_python=">=3.8", extra=FULL_METADATA)
    sdist = make_sdist("legacy-json", "1.0", requires_python=">=3.8", extra=FULL_METADATA)
    return {
        d.filename: d
        for d in (
            wheel,
            sdist,
            make_wheel("legacy-json", "1.5", extra=FULL_METADATA),
            make_wheel("legacy-json", "2.0rc1", extra=FULL_METADATA),
            make_wheel("pre-only", "0.9b1", extra=[("Keywords", "one two")]),
            make_wheel("pre-only", "1.0"),
        )
    }


DISTS = _dists()


@dataclass
class Server:
    live: LiveServer
    base_url: str  # "" when unset
    log: Path

    def get(self, url: str) -> httpx.Response:
        """GET ``url``, resolved against the server's root when it is relative."""
        return httpx.get(urljoin(self.live.url + "/", url), timeout=30)

    def document(self, path: str) -> tuple[str, dict[str, Any]]:
        """The JSON at ``path`` and the URL it was read from (what relative URLs resolve on)."""
        response = self.get(path)
        assert response.status_code == 200, response.text
        doc: dict[str, Any] = response.json()
        return str(response.url), doc


@pytest.fixture(scope="module", params=["base_url", "no_base_url"])
def server(
    request: pytest.FixtureRequest,
    postgres_base: str | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp(request.param)
    settings = load_settings(
        overrides={"data": root / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    port = postgres.free_port()  # base_url must name the port before the server starts
    base_url = f"http://127.0.0.1:{port}" if request.param == "base_url" else ""
    log = root / "server.log"
    live = start_server(settings, log, env={"TILSIT_BASE_URL": base_url}, port=port)
    try:
        token = live.token()
        with httpx.Client(base_url=live.url, timeout=30) as client:
            for dist in DISTS.values():
                # The form's name as twine sends it: the metadata's Name.
                name = dist.filename.partition("-")[0].replace("_", "-")
                response = upload(client, dist, token, name=name)
                assert response.status_code == 200, response.text
        # A CLI command renders pages too, so it must run with the server's base_url.
        with pytest.MonkeyPatch.context() as env:
            env.setenv("TILSIT_BASE_URL", base_url)
            live.cli("yank", "legacy-json", "1.5", "--reason", "broken build")
            live.cli("yank", "pre-only", "1.0")
        yield Server(live, base_url, log)
    finally:
        stop(live)


def _all_documents(server: Server) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every legacy JSON of both projects, by the index's path and the root alias:
    the project's first, then each release's."""
    for prefix in ("/main/pypi", "/pypi"):
        for name in ("legacy-json", "pre-only"):
            url, doc = server.document(f"{prefix}/{name}/json")
            yield url, doc
            for version in doc["releases"]:
                yield server.document(f"{prefix}/{name}/{version}/json")


def _is_release_document(url: str) -> bool:
    parts = urlsplit(url).path.strip("/").split("/")  # [main/]pypi/<name>[/<version>]/json
    return len(parts) == (5 if parts[0] == "main" else 4)


def _files(doc: dict[str, Any]) -> list[dict[str, Any]]:
    files = list(doc["urls"])
    for entries in doc.get("releases", {}).values():
        files += entries
    return files


def test_documents_have_pypis_keys_and_no_vulnerabilities(server: Server) -> None:
    for url, doc in _all_documents(server):
        is_version = _is_release_document(url)
        # No "vulnerabilities": "[]" would claim none are known, and there is no data yet.
        top = {"info", "last_serial", "urls"} | (set() if is_version else {"releases"})
        assert set(doc) == top, url
        assert set(doc["info"]) == INFO_KEYS
        for f in _files(doc):
            assert set(f) == FILE_KEYS, f["filename"]
        # PyPI lists a release's files by filename.
        assert [f["filename"] for f in doc["urls"]] == sorted(f["filename"] for f in doc["urls"])
        response = server.get(url)
        assert int(response.headers["X-PyPI-Last-Serial"]) == doc["last_serial"]
        if not is_version:
            assert doc["urls"] == doc["releases"][doc["info"]["version"]]


def test_info_is_derived_from_the_metadata_as_pypi_does(server: Server) -> None:
    _url, doc = server.document("/main/pypi/legacy-json/json")
    info = doc["info"]
    assert info["name"] == "legacy-json"
    assert info["version"] == "1.0"
    assert info["summary"] == "A test distribution"
    assert info["home_page"] == HOME
    assert info["download_url"] == DOWNLOAD
    # Homepage and Download come from Home-page and Download-URL; their repeats
    # among the Project-URLs are dropped; other Project-URLs keep their labels.
    assert info["project_urls"] == {"Homepage": HOME, "Download": DOWNLOAD, "Source": SOURCE}
    assert info["keywords"] == "alpha, beta, gamma"
    assert info["platform"] == "linux"  # PyPI keeps the first Platform
    assert info["author"] == "Ada"
    assert info["license"] == "MIT"
    assert info["requires_python"] == ">=3.8"
    assert info["requires_dist"] is None
    assert info["classifiers"] == []
    assert info["downloads"] == {"last_day": -1, "last_month": -1, "last_week": -1}
    assert info["yanked"] is False and info["yanked_reason"] is None
    assert info["bugtrack_url"] is None and info["docs_url"] is None

    _url, pre = server.document("/main/pypi/pre-only/0.9b1/json")
    assert pre["info"]["keywords"] == "one two"  # space-separated: one keyword, as on PyPI
    assert pre["info"]["project_urls"] is None
    assert pre["info"]["platform"] is None

    _url, yanked = server.document("/main/pypi/legacy-json/1.5/json")
    assert yanked["info"]["yanked"] is True
    assert yanked["info"]["yanked_reason"] == "broken build"


def test_info_version_is_the_latest_final_release_not_yanked(server: Server) -> None:
    # 2.0rc1 is a pre-release and 1.5 is yanked: PyPI's info.version is 1.0.
    _url, doc = server.document("/main/pypi/legacy-json/json")
    assert set(doc["releases"]) == {"1.0", "1.5", "2.0rc1"}
    assert doc["info"]["version"] == "1.0"
    # With no final release left unyanked, a pre-release that is not yanked
    # comes before a yanked final one (warehouse orders by yanked, then pre-release).
    _url, doc = server.document("/main/pypi/pre-only/json")
    assert doc["info"]["version"] == "0.9b1"
    assert doc["urls"] == doc["releases"]["0.9b1"]


def test_file_entries_describe_the_uploaded_files(server: Server) -> None:
    _url, doc = server.document("/main/pypi/legacy-json/json")
    for version, entries in doc["releases"].items():
        assert entries, version
        for f in entries:
            data = DISTS[f["filename"]].data
            assert f["size"] == len(data)
            assert f["digests"] == {
                "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
                "sha256": hashlib.sha256(data).hexdigest(),
                "blake2b_256": hashlib.blake2b(data, digest_size=32).hexdigest(),
            }
            assert f["md5_digest"] == f["digests"]["md5"]
            wheel = f["filename"].endswith(".whl")
            assert f["packagetype"] == ("bdist_wheel" if wheel else "sdist")
            assert f["python_version"] == ("py3" if wheel else "source")
            assert f["has_sig"] is False
            assert f["comment_text"] == ""
            assert f["downloads"] == -1
            assert f["requires_python"] == (">=3.8" if version == "1.0" else None)
            assert LEGACY_TIME.fullmatch(f["upload_time"]), f["upload_time"]
            assert ISO_TIME.fullmatch(f["upload_time_iso_8601"]), f["upload_time_iso_8601"]
            moment = datetime.fromisoformat(f["upload_time_iso_8601"])
            assert f["upload_time"] == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
            assert f["yanked"] is (version == "1.5")
            assert f["yanked_reason"] == ("broken build" if version == "1.5" else None)


def test_file_urls_fetch_the_files(server: Server) -> None:
    for url, doc in _all_documents(server):
        for f in _files(doc):
            if server.base_url:
                assert f["url"].startswith(f"{server.base_url}/packages/"), f["url"]
            else:
                # Root-relative: resolves against the JSON's own URL, and is the form
                # bandersnatch accepts (it needs a path under /packages).
                assert f["url"].startswith("/packages/"), f["url"]
            response = httpx.get(urljoin(url, f["url"]), timeout=30)
            assert response.status_code == 200, f["url"]
            assert hashlib.sha256(response.content).hexdigest() == f["digests"]["sha256"]


def test_links_point_at_pages_that_exist(server: Server) -> None:
    for url, doc in _all_documents(server):
        info = doc["info"]
        for key in ("package_url", "project_url", "release_url"):
            assert info[key].startswith(f"{server.base_url}/main/"), info[key]
            if server.base_url:
                assert urlsplit(info[key]).netloc, info[key]
        # The project's page is its simple page: it lists every file of the project.
        assert info["package_url"] == info["project_url"]
        page = httpx.get(urljoin(url, info["project_url"]), timeout=30)
        assert page.status_code == 200, info["project_url"]
        for f in _files(doc):
            assert f["filename"] in page.text
        # The release's page is the release's own JSON.
        release = httpx.get(urljoin(url, info["release_url"]), timeout=30)
        assert release.status_code == 200, info["release_url"]
        assert release.json()["info"]["version"] == info["version"]
        assert "releases" not in release.json()


def test_operator_is_told_when_base_url_is_unset(server: Server) -> None:
    warning = legacy.base_url_warning("")
    assert warning is not None and "base_url" in warning and "legacy JSON" in warning
    health = server.get("/_/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"  # a warning, not degraded: installers are served well
    startup = server.log.read_text()
    if server.base_url:
        assert warning not in body["warnings"]
        assert "base_url is unset" not in startup
    else:
        assert warning in body["warnings"]
        assert f"warning: {warning}" in startup


def test_an_unknown_upload_time_is_null_in_both_keys() -> None:
    """A mirrored file whose upstream gave no upload time (files.upload_time NULL)."""
    unknown = FileSnap(
        filename="mirrored-1.0-py3-none-any.whl",
        packagetype="bdist_wheel",
        python_version="py3",
        size=3,
        sha256="a" * 64,
        md5="b" * 32,
        blake2_256="c" * 64,
        metadata_sha256=None,
        requires_python=None,
        upload_time=None,  # type: ignore[arg-type]  # nullable with the fidelity change
        deleted=False,
        mirrored=True,
    )
    release = ReleaseSnap("1.0", yanked=False, yanked_reason="", deleted=False, files=(unknown,))
    project = ProjectSnap("main", "mirrored", "mirrored", 7, False, (release,))
    whole = legacy.project_json(project, lambda _sha256: None)
    assert whole is not None
    for data in (whole, legacy.version_json(project, release, lambda _sha256: None)):
        (entry,) = json.loads(data)["urls"]
        assert entry["upload_time"] is None
        assert entry["upload_time_iso_8601"] is None


@pytest.mark.parametrize(
    "base_url", ["pypi.example.com", "ftp://pypi.example.com", "https://pypi.example.com/?x=1"]
)
def test_a_base_url_pages_cannot_use_is_reported(base_url: str) -> None:
    warning = legacy.base_url_warning(base_url)
    assert warning is not None and repr(base_url) in warning


def test_a_malformed_base_url_is_reported_at_start_and_in_health(
    postgres_base: str | None, tmp_path: Path
) -> None:
    settings = load_settings(
        overrides={"data": tmp_path / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    log = tmp_path / "server.log"
    live = start_server(settings, log, env={"TILSIT_BASE_URL": "pypi.example.com"})
    try:
        warning = legacy.base_url_warning("pypi.example.com")
        assert warning is not None
        body = httpx.get(f"{live.url}/_/health", timeout=30).json()
        assert warning in body["warnings"]
        assert f"warning: {warning}" in log.read_text()
    finally:
        stop(live)


def test_a_usable_base_url_is_not_reported() -> None:
    for base_url in ("https://pypi.example.com", "http://127.0.0.1:8080/", "https://h/prefix/"):
        assert legacy.base_url_warning(base_url) is None
