"""``tilsit verify``: check a copy of an index end to end against a pinned root.

The client is python-tuf's ``ngclient``, used through its public API only:
``refresh()`` walks root, timestamp, snapshot and targets; one probe path per
hashed bin makes ngclient fetch and verify that bin (it caches the verified
bytes in the metadata directory, which is where the target list is read
from); ``download_target()`` fetches each target under its hashed name. On top
of what a TUF client does, verify also fetches the plain names pip uses
(``/packages/…``, ``/<index>/packages/…``, ``/<index>/simple/<p>/``), checks
them against the signed target info, and reads the signed pages' links: a link
to a file that is not a target is an ``unlisted path``.

Each fault has a name (``FAULTS``). Metadata faults (the copy cannot be
trusted at all) exit 2; target faults (some files are wrong) exit 1; a clean
copy exits 0.

A source is a URL (the index base, ``https://host/<index>/``) or a directory
holding a static tree (``<dir>/<index>/tuf/``), read by :class:`TreeFetcher`
without a server.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import ssl
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from itertools import count
from netrc import NetrcParseError
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urljoin, urlsplit

import httpx
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root, SuccinctRoles, TargetFile, Targets
from tuf.ngclient import FetcherInterface, Updater

__all__ = [
    "FAULTS",
    "METADATA_FAULTS",
    "TARGET_FAULTS",
    "Fault",
    "HttpxFetcher",
    "Report",
    "TreeFetcher",
    "verify",
]

TAMPERED = "tampered file"
MISSING = "missing file"
UNLISTED = "unlisted path"
UNREACHABLE = "unreachable file"
TARGET_FAULTS = (TAMPERED, MISSING, UNLISTED, UNREACHABLE)

ROLLBACK = "rollback"
MIX_AND_MATCH = "mix-and-match"
BROKEN_ROOT_CHAIN = "broken root chain"
OVERSIZED = "oversized metadata"
EXPIRED = tuple(f"expired {role}" for role in ("root", "timestamp", "snapshot", "targets", "bins"))
BAD_SIGNATURE = "bad signature"
MISSING_METADATA = "missing metadata"
BAD_METADATA = "bad metadata"
ACCESS_DENIED = "access denied"
METADATA_FAULTS = (
    ACCESS_DENIED,
    ROLLBACK,
    MIX_AND_MATCH,
    BROKEN_ROOT_CHAIN,
    OVERSIZED,
    *EXPIRED,
    BAD_SIGNATURE,
    MISSING_METADATA,
    BAD_METADATA,
)
FAULTS = (*METADATA_FAULTS, *TARGET_FAULTS)

PAGE_HTML = "index.html"
PAGE_JSON = "index.v1.json"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
# The header a proxy index's answer to only-if-cached carries for a file not fetched yet.
FETCHED_HEADER = "x-tilsit-fetched"
_CHUNK = 1 << 16
TREE_URL = (
    "tilsit-tree:/"  # DIR mode: ngclient builds URLs by concatenation, TreeFetcher maps them back
)


@dataclass(frozen=True)
class Fault:
    name: str  # one of FAULTS
    path: str  # a target path, a plain URL path or a metadata file name
    detail: str

    @property
    def is_metadata(self) -> bool:
        return self.name in METADATA_FAULTS


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def _hasher(algorithm: str) -> _Hasher:
    """A hash object for a TUF hash name (securesystemslib spells BLAKE2b-256 so)."""
    if algorithm == "blake2b-256":
        return hashlib.blake2b(digest_size=32)
    return hashlib.new(algorithm)


@dataclass(frozen=True)
class PlainRead:
    """What a bounded, streaming read of a plain name found: how many bytes (at most the
    signed length + 1: past that, reading stopped) and their digests."""

    length: int
    digests: dict[str, str]

    @classmethod
    def of(cls, chunks: Iterable[bytes], info: TargetFile) -> PlainRead:
        try:
            hashers = {name: _hasher(name) for name in info.hashes}
        except ValueError:
            hashers = {}  # an algorithm this Python lacks: reported as a mismatch
        limit = info.length + 1
        seen = 0
        for chunk in chunks:
            part = chunk if seen + len(chunk) <= limit else chunk[: limit - seen]
            for hasher in hashers.values():
                hasher.update(part)
            seen += len(part)
            if seen >= limit:
                break  # more than the signed length: the rest is not read
        return cls(seen, {name: h.hexdigest() for name, h in hashers.items()})

    def problem(self, info: TargetFile) -> str | None:
        """How the bytes differ from the signed target info, or None."""
        if self.length > info.length:
            return f"more than the signed length of {info.length} bytes (reading stopped there)"
        if self.length < info.length:
            return f"{self.length} bytes, the signed length is {info.length}"
        for name, expected in info.hashes.items():
            got = self.digests.get(name)
            if got is None:
                return f"cannot compute the signed {name} hash"
            if got != expected:
                return f"{name} is {got}, signed {expected}"
        return None


@dataclass
class Report:
    source: str
    faults: list[Fault] = field(default_factory=list)
    root_version: int = 0
    timestamp_version: int = 0
    bins: int = 0
    targets_listed: int = 0
    targets_checked: int = 0
    plain_checked: int = 0
    pages_read: int = 0
    bytes_checked: int = 0
    seconds: float = 0.0
    # Files a proxy index links but has not fetched from its upstream yet (URL paths).
    not_yet_fetched: list[str] = field(default_factory=list)
    # A mirror signed by its own server rather than its origin (the root's signed
    # "x-tilsit-resigned" field): {"upstream": URL, "reason": why}.
    resigned: dict[str, object] | None = None

    @property
    def exit_code(self) -> int:
        if any(f.is_metadata for f in self.faults):
            return 2
        return 1 if self.faults else 0

    def add(self, name: str, path: str, detail: str) -> None:
        self.faults.append(Fault(name, path, detail))

    def as_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "ok": not self.faults,
            "exit_code": self.exit_code,
            "faults": [{"fault": f.name, "path": f.path, "detail": f.detail} for f in self.faults],
            "root_version": self.root_version,
            "timestamp_version": self.timestamp_version,
            "bins": self.bins,
            "targets_listed": self.targets_listed,
            "targets_checked": self.targets_checked,
            "plain_checked": self.plain_checked,
            "pages_read": self.pages_read,
            "bytes_checked": self.bytes_checked,
            "seconds": round(self.seconds, 3),
            "resigned": self.resigned,
            "not_yet_fetched": self.not_yet_fetched,
        }

    def summary(self) -> str:
        lines = [f"FAULT {f.name}: {f.path}: {f.detail}" for f in self.faults]
        if self.resigned is not None:
            lines.append(
                f"RE-SIGNED: a mirror of {self.resigned.get('upstream')} signed by its own"
                f" server's root, not the origin's: {self.resigned.get('reason')}"
            )
        if self.not_yet_fetched:
            shown = ", ".join(p.rsplit("/", 1)[-1] for p in self.not_yet_fetched[:3])
            more = len(self.not_yet_fetched) - 3
            lines.append(
                f"NOT YET FETCHED: {len(self.not_yet_fetched)} file(s) the proxy lists but has"
                f" not fetched from its upstream ({shown}{f', and {more} more' if more > 0 else ''});"
                " its signed pages pin their hashes, and each is signed once fetched"
            )
        verdict = "OK" if not self.faults else f"{len(self.faults)} fault(s)"
        lines.append(
            f"{verdict}: {self.source}: root v{self.root_version}, timestamp "
            f"v{self.timestamp_version}, {self.bins} bins, {self.targets_listed} targets listed, "
            f"{self.targets_checked} checked ({self.bytes_checked} bytes), "
            f"{self.plain_checked} plain names, {self.pages_read} pages read, "
            f"{self.seconds:.1f} s"
        )
        return "\n".join(lines)


class TreeFetcher(FetcherInterface):
    """Reads ``tilsit-tree:/<relative path>`` URLs from a tree on disk.

    A missing file is an HTTP 404 to ngclient, as a server would answer; a path
    that leaves the tree is refused the same way.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path_of(self, url: str) -> Path | None:
        if not url.startswith(TREE_URL):
            return None
        path = (self.root / unquote(url.removeprefix(TREE_URL))).resolve()
        return path if path.is_relative_to(self.root) else None

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = self.path_of(url)
        if path is None or not path.is_file():
            raise tuf_errors.DownloadHTTPError(f"{url}: not found", 404)
        return self._chunks(path)

    @staticmethod
    def _chunks(path: Path) -> Iterator[bytes]:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk


class HttpxFetcher(FetcherInterface):
    """ngclient's downloads through the same httpx client as the plain names.

    One HTTP stack, so ``--cafile``, a token for a private index and
    ``~/.netrc`` apply to metadata, hashed targets and pages alike.
    """

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            response = self.http.send(self.http.build_request("GET", url), stream=True)
        except httpx.TimeoutException as exc:
            raise tuf_errors.SlowRetrievalError(f"{url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise tuf_errors.DownloadError(f"{url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            response.close()
            raise tuf_errors.DownloadHTTPError(
                f"{url}: HTTP {response.status_code}", response.status_code
            )
        return self._chunks(url, response)

    @staticmethod
    def _chunks(url: str, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes()
        except httpx.TimeoutException as exc:
            raise tuf_errors.SlowRetrievalError(f"{url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise tuf_errors.DownloadError(f"{url}: {type(exc).__name__}: {exc}") from exc
        finally:
            response.close()


def http_client(
    timeout: float, cafile: str | None = None, token: str | None = None
) -> httpx.Client:
    """The client verify reads a server with: the system's CAs (or ``cafile``),
    ``SSL_CERT_FILE`` and ``~/.netrc`` honoured, and a token for a private index
    sent as pip sends it (Basic ``__token__``)."""
    verify: ssl.SSLContext | bool = True
    if cafile:
        verify = ssl.create_default_context(cafile=cafile)
    auth: httpx.Auth | None = httpx.BasicAuth("__token__", token) if token else None
    netrc = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if auth is None and netrc.is_file():
        # As pip and uv do: credentials for the host from the netrc file.
        try:
            auth = httpx.NetRCAuth(str(netrc))
        except (OSError, NetrcParseError) as exc:
            raise ValueError(f"{netrc}: {exc}") from exc
    return httpx.Client(
        timeout=timeout,
        follow_redirects=True,
        verify=verify,
        auth=auth,
        headers={"user-agent": "tilsit-verify"},
    )


class _Recording(FetcherInterface):
    """Remembers the last URL asked for, so a fault can name the file that failed."""

    def __init__(self, inner: FetcherInterface) -> None:
        self.inner = inner
        self.last_url = ""

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.last_url = url
        return self.inner._fetch(url)


class _Links(HTMLParser):
    """The ``<a href>`` links of a simple page, with their core-metadata flag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        values = dict(attrs)
        href = values.get("href")
        if href:
            metadata = values.get("data-core-metadata") or values.get("data-dist-info-metadata")
            self.links.append((href, bool(metadata) and metadata != "false"))


def page_links(target_path: str, data: bytes) -> list[tuple[str, bool]]:
    """Links of a signed page: (href, has core metadata)."""
    if target_path.endswith(PAGE_JSON):
        doc = json.loads(data)
        out: list[tuple[str, bool]] = []
        for f in doc.get("files", []):
            out.append((f["url"], bool(f.get("core-metadata") or f.get("dist-info-metadata"))))
        return out
    parser = _Links()
    parser.feed(data.decode("utf-8", "replace"))
    return parser.links


def probe_paths(succinct: SuccinctRoles) -> dict[str, str]:
    """One path per bin that ``get_targetinfo`` will look up in that bin."""
    wanted = set(succinct.get_roles())
    probes: dict[str, str] = {}
    for n in count():
        path = f"tilsit-probe/{n}"
        role = succinct.get_role_for_target(path)
        if role not in probes:
            probes[role] = path
            if len(probes) == len(wanted):
                return probes
    raise AssertionError("unreachable")  # pragma: no cover


_ROLE_IN_MESSAGE = re.compile(r"\b(root|timestamp|snapshot|targets|bins-[0-9a-f]+)\b")


def classify(exc: Exception, *, gap: bool) -> tuple[str, str]:
    """The fault name and the role concerned for an ngclient metadata error."""
    message = str(exc)
    found = _ROLE_IN_MESSAGE.search(message)
    role = found.group(1) if found else "metadata"
    if gap and isinstance(exc, tuf_errors.UnsignedMetadataError):
        # Signed by keys of a root version the client never reached.
        return BROKEN_ROOT_CHAIN, role
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return f"expired {'bins' if role.startswith('bins-') else role}", role
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        if role == "root" or message.startswith("Expected root"):
            return BROKEN_ROOT_CHAIN, "root"
        # "New timestamp version 1 must be >= 5", "New snapshot version must
        # be >= …", and a new snapshot naming an older "bins-7.json version"
        # than the trusted one: the copy went back in time.
        if " must be >= " in message or re.match(r"Expected \S+\.json version", message):
            return ROLLBACK, role
        # "Expected snapshot version 2, got 1", "Expected bins-7 v2, got v1.":
        # a file that is not the version its signed parent names.
        return MIX_AND_MATCH, role
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return (BROKEN_ROOT_CHAIN if role == "root" else BAD_SIGNATURE), role
    if isinstance(exc, tuf_errors.LengthOrHashMismatchError):
        return MIX_AND_MATCH, role
    if isinstance(exc, tuf_errors.DownloadLengthMismatchError):
        return OVERSIZED, role
    if isinstance(exc, tuf_errors.DownloadHTTPError):
        if exc.status_code in (401, 403):
            return ACCESS_DENIED, role
        return MISSING_METADATA, role
    return BAD_METADATA, role


class _Source:
    """Where metadata, hashed targets and plain names come from."""

    def __init__(
        self,
        source: str,
        index: str | None,
        timeout: float,
        cafile: str | None = None,
        token: str | None = None,
    ) -> None:
        self.tree: TreeFetcher | None = None
        self.http: httpx.Client | None = None
        self.fetcher: FetcherInterface
        if re.match(r"^https?://", source):
            base = source.rstrip("/") + "/"
            if index:
                base += f"{index}/"
            self.index = index or base.rstrip("/").rsplit("/", 1)[-1]
            self.index_base = base
            self.index_path = urlsplit(base).path
            self.http = http_client(timeout, cafile, token)
            self.fetcher = HttpxFetcher(self.http)
        else:
            root = Path(source)
            if not root.is_dir():
                raise ValueError(f"{source}: neither an http(s) URL nor a directory")
            if index is None:
                found = sorted(p.parent.parent.name for p in root.glob("*/tuf/timestamp.json"))
                if len(found) != 1:
                    raise ValueError(
                        f"{source}: holds {len(found)} signed indexes ({', '.join(found) or 'none'}): name one with --index"
                    )
                index = found[0]
            self.index = index
            self.index_base = f"{TREE_URL}{index}/"
            self.index_path = f"/{index}/"
            self.tree = TreeFetcher(root)
            self.fetcher = self.tree
        self.fetcher = self.recorder = _Recording(self.fetcher)

    @property
    def metadata_url(self) -> str:
        return self.index_base + "tuf/"

    def origin_path(self, url_path: str) -> str:
        """A URL for ``url_path`` (absolute path) on the server or tree being verified."""
        if self.tree is not None:
            return TREE_URL + url_path.lstrip("/")
        parts = urlsplit(self.index_base)
        return f"{parts.scheme}://{parts.netloc}{url_path}"

    def read(self, url: str, info: TargetFile, accept: str | None = None) -> PlainRead | None:
        """Read ``url`` in chunks, hashing as it comes, and stop one byte past the signed
        length; None when absent. No more than one chunk is ever held.

        With ``accept`` set to the JSON type, a directory URL answered with
        anything else (a static server that does not negotiate, as nginx's
        default or ``http.server``) is read again as ``index.v1.json``, the
        name such a server offers for the JSON page.
        """
        if self.tree is not None:
            path = self.tree.path_of(url)
            if path is not None and path.is_dir():
                path = path / (PAGE_JSON if accept == JSON_TYPE else PAGE_HTML)
            if path is None or not path.is_file():
                return None
            with path.open("rb") as fh:
                return PlainRead.of(iter(lambda: fh.read(_CHUNK), b""), info)
        assert self.http is not None
        headers = {"Accept": accept} if accept else {}
        with self.http.stream("GET", url, headers=headers) as response:
            if response.status_code == 404:
                return None
            response.raise_for_status()
            media_type = response.headers.get("content-type", "").split(";")[0].strip()
            if accept == JSON_TYPE and url.endswith("/") and media_type != JSON_TYPE:
                return self.read(url + PAGE_JSON, info)
            return PlainRead.of(response.iter_bytes(_CHUNK), info)

    def not_yet_fetched(self, url: str) -> bool:
        """Whether a proxy index says it has not fetched the file at ``url`` from its
        upstream yet. Asked as HTTP asks a cache (``HEAD`` with ``Cache-Control:
        only-if-cached``, so the proxy never fetches for it); a tilsit proxy answers 504
        with ``X-Tilsit-Fetched: no``. A tree on disk has no proxy behind it: never."""
        if self.http is None:
            return False
        try:
            response = self.http.head(url, headers={"Cache-Control": "only-if-cached"})
        except httpx.HTTPError:
            return False
        return response.status_code == 504 and response.headers.get(FETCHED_HEADER) == "no"

    def close(self) -> None:
        if self.http is not None:
            self.http.close()


def default_state_dir(source: str, root: bytes) -> Path:
    key = hashlib.sha256(source.encode() + b"\0" + root).hexdigest()[:32]
    return Path.home() / ".cache" / "tilsit" / "verify" / key


def verify(
    source: str,
    root: bytes,
    *,
    index: str | None = None,
    projects: tuple[str, ...] = (),
    sample: int | None = None,
    state_dir: Path | None = None,
    timeout: float = 30.0,
    seed: int | None = None,
    cafile: str | None = None,
    token: str | None = None,
) -> Report:
    """Verify the index at ``source`` against the trusted ``root`` bytes.

    ``state_dir`` keeps ngclient's metadata cache between runs (so a rollback
    below what an earlier run saw is caught); None uses a throwaway directory.
    """
    started = time.monotonic()
    src = _Source(source, index, timeout, cafile, token)
    report = Report(source=source if src.tree is None else f"{source} (index {src.index})")
    with tempfile.TemporaryDirectory(prefix="tilsit-verify-") as scratch:
        metadata_dir = state_dir or Path(scratch) / "metadata"
        metadata_dir.mkdir(parents=True, exist_ok=True)
        downloads = Path(scratch) / "targets"
        downloads.mkdir()
        try:
            _Run(src, root, metadata_dir, downloads, report).run(projects, sample, seed)
        finally:
            src.close()
    report.seconds = time.monotonic() - started
    return report


class _Run:
    def __init__(
        self, src: _Source, root: bytes, metadata_dir: Path, downloads: Path, report: Report
    ) -> None:
        self.src = src
        self.root = root
        self.metadata_dir = metadata_dir
        self.downloads = downloads
        self.report = report
        self.targets: dict[str, TargetFile] = {}
        self.checked: set[str] = set()

    def updater(self) -> Updater:
        return Updater(
            metadata_dir=str(self.metadata_dir),
            metadata_base_url=self.src.metadata_url,
            target_dir=str(self.downloads),
            target_base_url=self.src.index_base,
            fetcher=self.src.fetcher,
            bootstrap=self.root,
        )

    def root_gap(self) -> int | None:
        """N+1 when ``N+1.root.json`` is absent but ``N+2.root.json`` exists.

        ngclient stops its root walk at the first 404, so without this probe
        a gap would only show as a later signature failure (or not at all).
        """
        try:
            version = Metadata[Root].from_file(str(self.metadata_dir / "root.json")).signed.version
        except (OSError, ValueError, tuf_errors.RepositoryError):
            version = Metadata[Root].from_bytes(self.root).signed.version
        self.report.root_version = version
        url = self.src.metadata_url
        try:
            b"".join(self.src.fetcher.fetch(f"{url}{version + 1}.root.json"))
            return None
        except tuf_errors.DownloadError:
            pass
        try:
            b"".join(self.src.fetcher.fetch(f"{url}{version + 2}.root.json"))
        except tuf_errors.DownloadError:
            return None
        return version + 1

    def metadata_fault(self, exc: Exception) -> None:
        failed = self.src.recorder.last_url.rsplit("/", 1)[-1]
        gap = self.root_gap()
        name, role = classify(exc, gap=gap is not None)
        detail = f"{type(exc).__name__}: {exc}"
        if gap is not None:
            detail = f"{gap}.root.json is missing but {gap + 1}.root.json exists; {detail}"
        self.report.add(name, failed if role == "metadata" else f"{role}.json", detail)

    def run(self, projects: tuple[str, ...], sample: int | None, seed: int | None) -> None:
        try:
            updater = self.updater()
        except tuf_errors.RepositoryError as exc:
            self.report.add(BAD_METADATA, "root.json", f"the pinned root is unusable: {exc}")
            return
        try:
            updater.refresh()
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
            self.metadata_fault(exc)
            return
        gap = self.root_gap()
        if gap is not None:
            self.report.add(
                BROKEN_ROOT_CHAIN,
                f"{gap}.root.json",
                f"missing, but {gap + 1}.root.json exists: clients stop at the gap",
            )
        self.load_timestamp_version()
        if not self.walk_bins(updater):
            return
        self.check(updater, projects, sample, seed)

    def load_timestamp_version(self) -> None:
        ts = Metadata.from_file(str(self.metadata_dir / "timestamp.json"))
        self.report.timestamp_version = ts.signed.version
        root = Metadata[Root].from_file(str(self.metadata_dir / "root.json")).signed
        marker = root.unrecognized_fields.get("x-tilsit-resigned")
        if isinstance(marker, dict):
            self.report.resigned = marker

    def walk_bins(self, updater: Updater) -> bool:
        top = Metadata[Targets].from_file(str(self.metadata_dir / "targets.json")).signed
        self.targets.update(top.targets)
        delegations = top.delegations
        if delegations is None:
            return True
        if delegations.succinct_roles is None:
            self.report.add(
                BAD_METADATA, "targets.json", "delegates to named roles; tilsit signs hashed bins"
            )
            return False
        succinct = delegations.succinct_roles
        probes = probe_paths(succinct)
        self.report.bins = len(probes)
        ok = True
        for role, probe in sorted(probes.items()):
            try:
                updater.get_targetinfo(probe)
            except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
                name, _ = classify(exc, gap=False)
                self.report.add(name, f"{role}.json", f"{type(exc).__name__}: {exc}")
                ok = False
                continue
            signed = Metadata[Targets].from_file(str(self.metadata_dir / f"{role}.json")).signed
            for path, info in signed.targets.items():
                if succinct.get_role_for_target(path) != role:
                    # ngclient would never look a path up here; a client cannot see it.
                    self.report.add(BAD_METADATA, path, f"listed in {role}, which does not own it")
                    continue
                self.targets[path] = info
        self.report.targets_listed = len(self.targets)
        return ok

    # -- targets -------------------------------------------------------------

    def check(
        self, updater: Updater, projects: tuple[str, ...], sample: int | None, seed: int | None
    ) -> None:
        everything = not projects and sample is None
        pages = [p for p in self.targets if p.startswith("simple/")]
        for path in sorted(p for p in pages if p.count("/") == 1):  # the project list
            self.check_page(updater, path)
        listed = sorted(
            {p.split("/")[1] for p in pages if p.count("/") == 2 and p.endswith("/" + PAGE_HTML)}
        )
        if projects:
            chosen = list(projects)
        elif sample is not None:
            chosen = random.Random(seed).sample(listed, min(sample, len(listed)))  # noqa: S311 - choosing what to check, not a secret
        else:
            chosen = listed
        for project in chosen:
            found = False
            for name in (PAGE_HTML, PAGE_JSON):
                path = f"simple/{project}/{name}"
                if path in self.targets:
                    found = True
                    self.check_page(updater, path)
            if not found:
                self.report.add(UNLISTED, f"simple/{project}/", "no signed page for this project")
        if everything:
            for path in sorted(set(self.targets) - self.checked):
                self.check_target(updater, path)
        self.report.targets_checked = len(self.checked)

    def check_target(self, updater: Updater, path: str) -> bytes | None:
        """Download ``path`` under its hashed name; its bytes when they verify."""
        self.checked.add(path)
        info = self.targets[path]
        local = self.downloads / hashlib.sha256(path.encode()).hexdigest()
        try:
            updater.download_target(info, str(local))
        except (
            tuf_errors.LengthOrHashMismatchError,
            tuf_errors.DownloadLengthMismatchError,
        ) as exc:
            self.report.add(TAMPERED, path, f"hashed copy: {type(exc).__name__}: {exc}")
            return None
        except tuf_errors.DownloadHTTPError as exc:
            if exc.status_code in (403, 404, 410):
                self.report.add(MISSING, path, f"hashed copy: HTTP {exc.status_code}")
            else:
                self.report.add(UNREACHABLE, path, f"hashed copy: {exc}")
            return None
        except (tuf_errors.DownloadError, httpx.HTTPError) as exc:
            self.report.add(UNREACHABLE, path, f"hashed copy: {type(exc).__name__}: {exc}")
            return None
        self.report.bytes_checked += info.length
        data = local.read_bytes() if path.startswith("simple/") else None
        local.unlink()
        return data

    def check_plain(self, path: str, url: str, accept: str | None = None) -> None:
        """The name pip fetches must hold exactly the signed bytes (read as a stream,
        never past the signed length)."""
        info = self.targets[path]
        try:
            read = self.src.read(url, info, accept)
        except httpx.HTTPError as exc:
            self.report.add(UNREACHABLE, path, f"plain name {url}: {type(exc).__name__}: {exc}")
            return
        self.report.plain_checked += 1
        if read is None:
            self.report.add(MISSING, path, f"plain name {url}: not found")
            return
        if (problem := read.problem(info)) is not None:
            self.report.add(TAMPERED, path, f"plain name {url}: {problem}")

    def check_page(self, updater: Updater, path: str) -> None:
        if path in self.checked:
            return
        data = self.check_target(updater, path)
        directory = path.rsplit("/", 1)[0] + "/"
        accept = JSON_TYPE if path.endswith(PAGE_JSON) else "text/html"
        page_url = self.src.index_base + directory
        self.check_plain(path, page_url, accept)
        if data is None:
            return
        self.report.pages_read += 1
        try:
            links = page_links(path, data)
        except (ValueError, KeyError, TypeError) as exc:
            self.report.add(TAMPERED, path, f"signed page does not parse: {exc}")
            return
        # Links resolve against the page's path on the server (or the tree);
        # an absolute link to another host is checked on the copy at hand.
        page_path = "http://verify.invalid" + self.src.index_path + directory
        for href, has_metadata in links:
            self.check_link(updater, path, page_path, href, has_metadata)

    def check_link(
        self, updater: Updater, page: str, page_url: str, href: str, has_metadata: bool
    ) -> None:
        url_path = unquote(urlsplit(urljoin(page_url, href)).path)
        target = self.target_for(url_path, page)
        if target is None and (unsigned := _package_target(url_path)) is not None:
            # A file that is not signed (yet): a fault, unless a proxy has not fetched it
            # (its .metadata may be fetched already, as pip asks for that first).
            target = unsigned
        if target is None:
            self.report.add(UNLISTED, url_path, f"linked from {page} but not a signed target")
            return
        if target.startswith("simple/"):
            return  # a signed project page: checked when its project is chosen
        pairs = [(target, url_path)]
        if has_metadata:
            pairs.append((target + ".metadata", url_path + ".metadata"))
        for tpath, plain in pairs:
            if tpath not in self.targets:
                if not self.unfetched(plain):
                    self.report.add(UNLISTED, plain, f"linked from {page} but not a signed target")
                continue
            if tpath not in self.checked:
                self.check_target(updater, tpath)
                self.check_plain(tpath, self.src.origin_path(plain))

    def unfetched(self, url_path: str) -> bool:
        """A file a proxy index lists but has not fetched yet: it signs a file once it
        holds it, so until then its signed page is what pins the file's hash (and what
        pip checks the bytes against). Noted, not a fault."""
        if url_path in self.report.not_yet_fetched:
            return True  # linked from both pages of the project: asked once
        if not self.src.not_yet_fetched(self.src.origin_path(url_path)):
            return False
        self.report.not_yet_fetched.append(url_path)
        return True

    def target_for(self, url_path: str, page: str) -> str | None:
        """The target path a link on ``page`` names, or None when it names none."""
        parts = url_path.lstrip("/").split("/")
        if (candidate := _package_target(url_path)) is not None:
            return candidate if candidate in self.targets else None
        if page.count("/") == 1 and len(parts) >= 3 and parts[-3] == "simple":
            # The project list links <project>/ under the index's simple/.
            project = f"simple/{parts[-2]}/"
            if any(project + n in self.targets for n in (PAGE_HTML, PAGE_JSON)):
                return project
        return None


def _package_target(url_path: str) -> str | None:
    """The target path of a file's URL path: /packages/… (public) or /<index>/packages/…
    (private) are index-relative ``packages/…`` either way; None for other paths."""
    parts = url_path.lstrip("/").split("/")
    if "packages" not in parts[:2]:
        return None
    return "/".join(parts[parts.index("packages") :])
