"""bandersnatch, the standard PyPI mirroring tool, mirrors *from* tilsit.

bandersnatch (``.tools/bandersnatch``, from ``scripts/install-clients``) reads the PEP 691
root for ``{project: _last-serial}``, then ``/pypi/<project>/json`` (checking its
``X-PyPI-Last-Serial``) and downloads each file by its URL, which must have a path under
``/packages/``. It only speaks https to its master: here a tilsit server on 127.0.0.1 with a
certificate from a throwaway CA, which bandersnatch (aiohttp, ``ssl.create_default_context``)
trusts through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.bandersnatch.conftest import Upstream
from tests.builders import make_sdist, make_wheel
from tests.clients.tools import binary, clean_env, describe

pytestmark = pytest.mark.clients

# Each run prints "<n> packages to sync." and one "Fetching metadata for package: <name>
# (serial <n>)" per project it syncs.
_TO_SYNC = re.compile(r"(\d+) packages to sync\.")
_FETCHING = re.compile(r"Fetching metadata for package: (\S+) \(serial (\d+)\)")
_URL = re.compile(r"https?://\S+")


@dataclass
class Bandersnatch:
    """A bandersnatch mirror directory under ``root`` and the tilsit server it mirrors."""

    root: Path
    upstream: Upstream
    tool: str = "bandersnatch"  # .tools/<tool>/bin/bandersnatch (bandersnatch6: 6.8.0)
    api_method: str = "simple"

    @property
    def directory(self) -> Path:
        return self.root / "mirror"

    @property
    def web(self) -> Path:
        return self.directory / "web"

    def configure(self) -> Path:
        config = self.root / "bandersnatch.conf"
        config.write_text(
            "[mirror]\n"
            f"directory = {self.directory}\n"
            # The only server bandersnatch talks to: files are fetched by the
            # (absolute, same-origin) URLs that tilsit's JSON gives.
            f"master = {self.upstream.url}\n"
            "storage-backend = filesystem\n"
            # bandersnatch >= 7 speaks only the Simple API; 6.x needs to be told.
            f"api-method = {self.api_method}\n"
            "workers = 3\n"
            "verifiers = 3\n"
            "timeout = 10\n"
            "global-timeout = 120\n"
            # Without this bandersnatch logs an error and still exits 0.
            "stop-on-error = true\n"
            "json = true\n"
            "release-files = true\n"
            "hash-index = false\n"
            "simple-format = ALL\n"
            "compare-method = hash\n"
            "digest_name = sha256\n"
        )
        return config

    def env(self) -> dict[str, str]:
        home = self.root / "home"
        cache = self.root / "cache"
        for directory in (home, cache):
            directory.mkdir(parents=True, exist_ok=True)
        env = clean_env(home, cache, self.program().parent)
        # bandersnatch hands a proxy from the environment to aiohttp as the session's
        # proxy, which ignores NO_PROXY: the dead proxy would catch 127.0.0.1 too. The
        # master URL and the absolute file URLs keep every request on 127.0.0.1
        # (and run() checks every URL bandersnatch logs).
        for key in list(env):
            if key.lower().endswith("_proxy"):
                del env[key]
        env["SSL_CERT_FILE"] = str(self.upstream.ca_pem)
        return env

    def program(self) -> Path:
        return binary(self.tool, "bandersnatch")

    def run(self) -> subprocess.CompletedProcess[str]:
        program = self.program()
        config = self.configure()
        result = subprocess.run(
            [str(program), "--config", str(config), "mirror"],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        log = result.stdout + result.stderr
        assert result.returncode == 0, describe(result)
        assert " ERROR: " not in log, describe(result)
        origin = self.upstream.url
        urls = [u.rstrip(".,;:)'\"") for u in _URL.findall(log)]
        strays = [u for u in urls if u != origin and not u.startswith(f"{origin}/")]
        assert not strays, f"bandersnatch reached beyond the test server: {strays}"
        return result

    def major_version(self) -> int:
        result = subprocess.run(
            [str(self.program()), "--version"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        match = re.search(r"(\d+)\.\d+", result.stdout + result.stderr)
        assert match is not None, describe(result)
        return int(match[1])

    def status(self) -> int:
        return int((self.directory / "status").read_text().strip())


def _log(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def _synced(result: subprocess.CompletedProcess[str]) -> tuple[int, list[str]]:
    """What a run says it synced: the count it announced and the projects it fetched."""
    log = _log(result)
    counts = _TO_SYNC.findall(log)
    assert len(counts) == 1, describe(result)
    return int(counts[0]), sorted(name for name, _serial in _FETCHING.findall(log))


def _downloads(result: subprocess.CompletedProcess[str]) -> list[str]:
    """File names of the release files a run downloaded."""
    found = re.findall(r"Downloading: (\S+)", _log(result))
    return sorted(unquote(urlsplit(url).path).rsplit("/", 1)[1] for url in found)


def _tilsit_files(upstream: Upstream) -> dict[str, dict[str, Any]]:
    """Every file of every project of the upstream: URL path -> its PEP 691 entry."""
    files: dict[str, dict[str, Any]] = {}
    for project in upstream.root()[1]["projects"]:
        for entry in upstream.page(project["name"])["files"]:
            files[unquote(urlsplit(entry["url"]).path)] = entry
    return files


def _advertised_metadata(upstream: Upstream) -> dict[str, str]:
    """URL path of each ``.metadata`` file the legacy JSON advertises -> its sha256.

    bandersnatch 8 mirrors a file's core metadata when the legacy JSON gives its hash
    (``core-metadata``, as PyPI's does since warehouse#20193); 6.x never does.
    """
    advertised: dict[str, str] = {}
    with upstream.http() as client:
        for project in upstream.root()[1]["projects"]:
            document = client.get(f"/pypi/{project['name']}/json").json()
            for files in document["releases"].values():
                for f in files:
                    core = f.get("core-metadata")
                    if isinstance(core, dict):
                        path = unquote(urlsplit(f["url"]).path)
                        advertised[f"{path}.metadata"] = core["sha256"]
    return advertised


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_mirror_matches(upstream: Upstream, mirror: Bandersnatch) -> None:
    """The mirror holds exactly tilsit's files, byte for byte, and lists them the same."""
    files = _tilsit_files(upstream)
    metadata = _advertised_metadata(upstream) if mirror.major_version() >= 8 else {}
    with upstream.http() as client:
        for path, entry in files.items():
            assert path.startswith("/packages/"), path
            local = mirror.web / path.lstrip("/")
            assert local.is_file(), f"{path} is not in the mirror"
            served = client.get(path)
            assert served.status_code == 200
            assert _sha256(served.content) == entry["hashes"]["sha256"]
            assert _sha256(local.read_bytes()) == _sha256(served.content), path
        for path, sha256 in metadata.items():
            local = mirror.web / path.lstrip("/")
            assert local.is_file(), f"{path} is not in the mirror"
            served = client.get(path)
            assert served.status_code == 200
            assert _sha256(served.content) == sha256 == _sha256(local.read_bytes()), path
    mirrored = {
        "/" + p.relative_to(mirror.web).as_posix()
        for p in (mirror.web / "packages").rglob("*")
        if p.is_file()
    }
    assert mirrored == set(files) | set(metadata)

    _, root = upstream.root()
    names = sorted(p["name"] for p in root["projects"])
    mirror_root = json.loads((mirror.web / "simple" / "index.v1_json").read_text())
    assert sorted(p["name"] for p in mirror_root["projects"]) == names
    for name in names:
        ours = upstream.page(name)
        theirs = json.loads((mirror.web / "simple" / name / "index.v1_json").read_text())
        assert theirs["name"] == ours["name"]
        assert int(theirs["meta"]["_last-serial"]) == ours["meta"]["_last-serial"]
        assert sorted(theirs["versions"]) == sorted(ours["versions"])
        # Same files with the same hashes, sizes and upload times; bandersnatch links
        # them relative to its own tree (../../packages/...), at tilsit's paths.
        assert {
            f["filename"]: (f["hashes"]["sha256"], f["size"], f["upload-time"])
            for f in theirs["files"]
        } == {
            f["filename"]: (f["hashes"]["sha256"], f["size"], f["upload-time"])
            for f in ours["files"]
        }
        assert sorted(f["url"].removeprefix("../..") for f in theirs["files"]) == sorted(
            unquote(urlsplit(f["url"]).path) for f in ours["files"]
        )
        # It advertises exactly the core metadata it mirrored.
        assert {
            f["filename"] for f in theirs["files"] if isinstance(f.get("core-metadata"), dict)
        } == {
            f["filename"]
            for f in ours["files"]
            if f"{unquote(urlsplit(f['url']).path)}.metadata" in metadata
        }
        html = (mirror.web / "simple" / name / "index.html").read_text()
        for f in ours["files"]:
            assert f">{f['filename']}</a>" in html
            assert f"#sha256={f['hashes']['sha256']}" in html
        # json = true: bandersnatch keeps tilsit's legacy JSON as it was served.
        with upstream.http() as client:
            legacy = client.get(f"/pypi/{name}/json").json()
        assert json.loads((mirror.web / "json" / name).read_text()) == legacy


def test_bandersnatch_mirrors_tilsit(upstream: Upstream, tmp_path: Path) -> None:
    binary("bandersnatch")
    upstream.upload(
        make_wheel("alpha", "1.0"),
        make_sdist("alpha", "1.0"),
        make_wheel("alpha", "1.1", requires_python=">=3.9"),
        make_sdist("alpha", "1.1", requires_python=">=3.9"),
        make_wheel("Beta.Pkg", "0.1"),
        make_wheel("Beta.Pkg", "0.2", tag="py2.py3-none-any"),
        make_wheel("Beta.Pkg", "2.0rc1"),
        make_sdist("gamma", "3.0"),
    )
    mirror = Bandersnatch(tmp_path, upstream)

    first = mirror.run()
    count, fetched = _synced(first)
    assert (count, fetched) == (3, ["alpha", "beta-pkg", "gamma"]), describe(first)
    serial = upstream.serial()
    response, _ = upstream.root()
    assert int(response.headers["X-PyPI-Last-Serial"]) == serial
    assert mirror.status() == serial
    assert_mirror_matches(upstream, mirror)

    # Nothing changed upstream: one look at the root (bandersnatch asks for /simple,
    # which tilsit redirects to /simple/), nothing fetched, nothing downloaded.
    mark = upstream.mark()
    second = mirror.run()
    assert _synced(second) == (0, []), describe(second)
    assert _downloads(second) == [], describe(second)
    assert mirror.status() == serial
    requested = upstream.requests(mark)
    assert {path for _, path, _ in requested} <= {"/simple", "/simple/"}, requested
    assert [status for _, _, status in requested if status != 301] == [200], requested

    # One upload: the next run syncs that project and downloads that file, nothing else.
    upload = make_wheel("alpha", "1.2")
    upstream.upload(upload)
    assert upstream.serial() > serial
    mark = upstream.mark()
    third = mirror.run()
    assert _synced(third) == (1, ["alpha"]), describe(third)
    assert _downloads(third) == [upload.filename], describe(third)
    assert mirror.status() == upstream.serial()
    requested = upstream.requests(mark)
    assert all(status in (200, 301) for _, _, status in requested), requested
    paths = [path for _, path, _ in requested]
    assert [p for p in paths if p.startswith("/pypi/")] == ["/pypi/alpha/json"]
    assert {p.rsplit("/", 1)[1] for p in paths if p.startswith("/packages/")} <= {
        upload.filename,
        f"{upload.filename}.metadata",
    }
    assert_mirror_matches(upstream, mirror)
