"""A mirror of a tilsit index carries the origin's TUF metadata, unchanged.

After a sync has stored every file, :func:`carry` acts as a TUF client of the
origin (python-tuf's ngclient, bootstrapped from the pinned root, or the root
trusted on first use): it refreshes, walks every hashed bin, downloads each
signed page it lacks (ngclient checks length and sha256) and checks each signed
file against the blob the sync stored. Only when every target matches does it
publish: hashed links and plain names first, then the origin's metadata bytes
(``N.root.json``, ``N.targets.json``, ``N.bins-*.json``, ``N.snapshot.json``)
and ``timestamp.json`` last, so a reader sees the old consistent snapshot or
the new one. The mirror never signs such an index (the renderer and the
freshness pass skip it), so it verifies against the origin's root, and a
mirror that stops syncing fails clients once the origin's timestamp expires.

Every path the origin's metadata names (target paths, their hashed links, the
bins' role names) is checked by :mod:`tilsit.spec.treepaths` before anything
is downloaded or written: a target must be a page or a file of the index's own
layout, so an origin cannot sign ``simple/../../other/simple/x/index.html`` and
replace another index's page. One bad path refuses the whole carry
(:class:`CarryFault` ``unsafe target path``, naming it).

A mirror that cannot carry the origin's signatures (filtered, an origin with no
TUF metadata, or pages that link files by absolute URL and would send clients
to the origin) is signed by this server's own keys, and says so: the reason is
in the index options, ``mirror-status.json``, ``tilsit mirror status`` and
``tilsit verify``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import (
    Metadata,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.ngclient import FetcherInterface, Updater

from tilsit.db.models import IndexRow
from tilsit.spec.treepaths import UnsafeTreePath, check_target, tree_path
from tilsit.store.blobfile import place_blob, place_small_blob
from tilsit.store.blobs import BlobStore
from tilsit.store.tree import PAGE_HTML, PAGE_JSON, Tree
from tilsit.trust.compressed import (
    ACCEPT_ENCODING,
    GZIP_MIN,
    CompressionBomb,
    UnknownEncoding,
    decoded_chunks,
    write_metadata,
)
from tilsit.trust.keys import SERIALIZER, KeyError_, KeySet, keys_dir, root_signers
from tilsit.trust.layout import hashed_path, tuf_dir
from tilsit.trust.links import page_links
from tilsit.trust.repository import versioned
from tilsit.trust.verify import probe_paths

__all__ = [
    "CARRIED",
    "RESIGNED",
    "RESIGNED_FIELD",
    "AbsoluteLinks",
    "CarriedMetadata",
    "CarryFault",
    "NoOriginMetadata",
    "carried_indexes",
    "carries",
    "carry",
    "index_base",
    "mark_resigned",
    "reset_state",
    "resigned",
    "root_text",
    "state_dir_for",
]

CARRIED = "carried"
RESIGNED = "re-signed"


def carries(options: Mapping[str, Any]) -> bool:
    """Whether the index publishes its origin's metadata (so this server must not sign it)."""
    tuf = options.get("tuf")
    return isinstance(tuf, Mapping) and tuf.get("mode") == CARRIED


def resigned(upstream: str, reason: str) -> dict[str, Any]:
    return {"mode": RESIGNED, "upstream": upstream, "reason": reason}


def index_base(upstream: str) -> str | None:
    """The origin's index base (``…/<index>/``) for a simple URL (``…/<index>/simple/``).

    None when the URL names no index (``https://host/simple/``, as PyPI's): a tilsit
    origin publishes TUF metadata only under ``/<index>/tuf/``, so nothing is asked.
    """
    base = upstream.rstrip("/").removesuffix("/simple")
    if urlsplit(base).path.strip("/") == "":
        return None
    return base + "/"


class NoOriginMetadata(Exception):
    """The upstream publishes no TUF metadata (or not in tilsit's layout)."""


class CarryFault(Exception):
    """The origin's signed metadata or targets do not hold: nothing is published."""

    def __init__(self, fault: str, path: str, detail: str) -> None:
        super().__init__(f"{fault}: {path}: {detail}")
        self.fault = fault
        self.path = path


class AbsoluteLinks(Exception):
    """The origin's pages link files by absolute URL: copied verbatim they send clients away."""


UNSAFE_PATH = "unsafe target path"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class _Target:
    """A signed target whose paths were checked: where its plain and hashed names go."""

    path: str  # as signed, relative to the index base
    sha256: str
    plain: str  # tree-relative
    hashed: str  # tree-relative

    @property
    def is_file(self) -> bool:
        return self.path.startswith("packages/")


def _checked_targets(index: str, private: bool, listed: Mapping[str, TargetFile]) -> list[_Target]:
    """Every listed target's paths, checked, or :class:`CarryFault` naming the first bad one."""
    checked: list[_Target] = []
    for path, info in sorted(listed.items()):
        try:
            shape = check_target(path)
        except UnsafeTreePath as exc:
            raise CarryFault(UNSAFE_PATH, path, exc.reason) from exc
        sha256 = info.hashes.get("sha256")
        if sha256 is None:
            raise CarryFault("bad metadata", path, "no sha256 in the target's hashes")
        if _SHA256.fullmatch(sha256) is None:
            raise CarryFault("bad metadata", path, "its sha256 is not 64 lower-case hex digits")
        if shape == "file":
            directories = "".join(path.split("/")[1:4])
            owner = path.removesuffix(".metadata")
            if owner != path:
                # Core metadata sits beside its file, in the file's hash directories.
                if owner not in listed:
                    raise CarryFault(
                        UNSAFE_PATH, path, "core metadata of a file the origin does not list"
                    )
            elif directories != sha256:
                # The shared packages/ is content-addressed: a path must name its own bytes.
                raise CarryFault(
                    UNSAFE_PATH, path, "its directories are not its sha256 split as aa/bb/rest"
                )
        directory, _, name = path.rpartition("/")
        try:
            hashed = tree_path(index, f"{directory}/{sha256}.{name}")
            plain = tree_path(index, path, shared=shape == "file" and not private)
        except UnsafeTreePath as exc:
            raise CarryFault(UNSAFE_PATH, path, exc.reason) from exc
        checked.append(_Target(path, sha256, plain, hashed))
    return checked


@dataclass
class Carried:
    options: dict[str, Any]  # the index's new "tuf" option
    root: bytes  # the root the run trusted (pinned, or on first use)
    timestamp_version: int
    targets: int
    fetched_pages: int


class _Fetcher(FetcherInterface):
    """ngclient's downloads through httpx, with the mirror's CA bundle and credentials."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        auth = options.get("auth")
        ca_bundle = options.get("ca_bundle")
        self.client = httpx.Client(
            timeout=60,
            verify=ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True,
            auth=(auth["username"], auth["password"]) if isinstance(auth, Mapping) else None,
            # Only the codings decoded_chunks inflates (bounded), never br or zstd.
            headers={"User-Agent": "tilsit-mirror", "Accept-Encoding": ACCEPT_ENCODING},
        )

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            response = self.client.send(self.client.build_request("GET", url), stream=True)
        except httpx.HTTPError as exc:
            raise tuf_errors.DownloadError(f"{url}: {exc}") from exc
        if response.status_code != 200:
            response.close()
            raise tuf_errors.DownloadHTTPError(
                f"{url}: HTTP {response.status_code}", response.status_code
            )
        return self._chunks(url, response)

    @staticmethod
    def _chunks(url: str, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from decoded_chunks(url, response)
        except httpx.HTTPError as exc:
            raise tuf_errors.DownloadError(f"{url}: {exc}") from exc
        except (CompressionBomb, UnknownEncoding) as exc:
            raise tuf_errors.DownloadError(str(exc)) from exc
        finally:
            response.close()

    def close(self) -> None:
        self.client.close()


def _fetch(fetcher: FetcherInterface, url: str, cap: int) -> bytes:
    return fetcher.download_bytes(url, cap)


def _origin_root(fetcher: FetcherInterface, base: str) -> bytes:
    try:
        return _fetch(fetcher, f"{base}tuf/1.root.json", 512_000)
    except tuf_errors.DownloadHTTPError as exc:
        raise NoOriginMetadata(f"{base}tuf/1.root.json: HTTP {exc.status_code}") from exc
    except tuf_errors.DownloadError as exc:
        raise NoOriginMetadata(f"{base}tuf/1.root.json: {exc}") from exc


def _fault_of(exc: Exception) -> str:
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return "expired metadata"
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        return "rollback or mix-and-match"
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return "bad signature"
    if isinstance(
        exc, tuf_errors.LengthOrHashMismatchError | tuf_errors.DownloadLengthMismatchError
    ):
        return "tampered file"
    if isinstance(exc, tuf_errors.DownloadHTTPError) and exc.status_code == 404:
        return "missing file"
    return "bad metadata"


class CarriedMetadata:
    """The origin's metadata as a mirror carries it, for :func:`tilsit.trust.fresh.sweep`.

    Which roles are bins comes from the origin's targets metadata (its bin count
    may differ from this server's), never from this server's keys.
    """

    def __init__(self, tree: Tree, index: str) -> None:
        self.tree = tree
        self.index = index
        self.dir = tuf_dir(index)
        self._succinct: SuccinctRoles | None = None

    def exists(self) -> bool:
        return self.tree.path(f"{self.dir}/timestamp.json").exists()

    def timestamp(self) -> Metadata[Timestamp]:
        raw = self.tree.read(f"{self.dir}/timestamp.json")
        if raw is None:
            raise FileNotFoundError(f"{self.dir}/timestamp.json is missing")
        return Metadata[Timestamp].from_bytes(raw)

    def is_bin(self, role: str) -> bool:
        succinct = self._bins()
        return succinct is not None and succinct.is_delegated_role(role)

    def role_for(self, path: str) -> str:
        """The bin that holds ``path`` in the origin's current cut ("" if none is known)."""
        succinct = self._bins()
        return "" if succinct is None else succinct.get_role_for_target(path)

    def _bins(self) -> SuccinctRoles | None:
        """The origin's current bins, as the carried snapshot's targets.json delegates."""
        if self._succinct is None:
            snapshot = self.tree.read(
                f"{self.dir}/{self.timestamp().signed.snapshot_meta.version}.snapshot.json"
            )
            if snapshot is None:
                return None
            version = Metadata[Snapshot].from_bytes(snapshot).signed.meta["targets.json"].version
            raw = self.tree.read(f"{self.dir}/{version}.targets.json")
            delegations = Metadata[Targets].from_bytes(raw).signed.delegations if raw else None
            if delegations is None or delegations.succinct_roles is None:
                return None
            self._succinct = delegations.succinct_roles
        return self._succinct

    def load_bin(self, name: str, version: int | None = None) -> Metadata[Targets]:
        assert version is not None, "the sweep names the version"
        raw = self.tree.read(f"{self.dir}/{version}.{name}.json")
        if raw is None:
            raise FileNotFoundError(f"{self.dir}/{version}.{name}.json is missing")
        return Metadata[Targets].from_bytes(raw)

    def hashed_path(self, target: str, sha256: str) -> str:
        return hashed_path(self.index, target, sha256)


def carry(
    tree: Tree,
    blobs: BlobStore,
    state_dir: Path,
    index: str,
    private: bool,
    options: Mapping[str, Any],
    *,
    reusable: Callable[[str], bool],
) -> Carried:
    """Verify the origin's current metadata and targets, then publish them under ``index``.

    ``reusable(sha256)`` says whether a blob already stored may stand for a signed
    file without fetching it (``tilsit.index.upstream.reusable_blobs``): a hash the
    origin signs is not proof of having the bytes, which may be a private index's.

    Raises :class:`NoOriginMetadata` or :class:`AbsoluteLinks` (the mirror must sign
    itself) or :class:`CarryFault` (the origin's copy does not verify: publish nothing).
    """
    fetcher = _Fetcher(options)
    try:
        return _carry(tree, blobs, state_dir, index, private, options, fetcher, reusable)
    finally:
        fetcher.close()


def _carry(
    tree: Tree,
    blobs: BlobStore,
    state_dir: Path,
    index: str,
    private: bool,
    options: Mapping[str, Any],
    fetcher: _Fetcher,
    reusable: Callable[[str], bool],
) -> Carried:
    upstream = str(options["upstream"])
    base = index_base(upstream)
    if base is None:
        raise NoOriginMetadata(
            f"{upstream} names no index; a tilsit origin signs /<index>/simple/ under /<index>/tuf/"
        )
    tuf_option = options.get("tuf")
    previous: Mapping[str, Any] = tuf_option if isinstance(tuf_option, Mapping) else {}
    pinned = options.get("upstream_root")
    if isinstance(pinned, str):
        root = pinned.encode()
        trust = "pinned"
    else:
        root = _origin_root(fetcher, base)
        trust = "first use"
    Metadata[Root].from_bytes(root)  # a pinned root that does not parse is refused here
    metadata_dir = state_dir / "metadata"
    downloads = state_dir / "targets"
    metadata_dir.mkdir(parents=True, exist_ok=True)
    downloads.mkdir(parents=True, exist_ok=True)
    try:
        updater = Updater(
            metadata_dir=str(metadata_dir),
            metadata_base_url=f"{base}tuf/",
            target_dir=str(downloads),
            target_base_url=base,
            fetcher=fetcher,
            # The root cached by the last sync (rollback protection), else the pinned one.
            bootstrap=None if (metadata_dir / "root.json").is_file() else root,
        )
        updater.refresh()
    except tuf_errors.DownloadHTTPError as exc:
        if exc.status_code == 404 and not (metadata_dir / "timestamp.json").is_file():
            raise NoOriginMetadata(f"{base}tuf/: HTTP 404") from exc
        raise CarryFault(_fault_of(exc), "metadata", str(exc)) from exc
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
        raise CarryFault(_fault_of(exc), "metadata", f"{type(exc).__name__}: {exc}") from exc

    targets_md = Metadata[Targets].from_file(str(metadata_dir / "targets.json"))
    delegations = targets_md.signed.delegations
    if delegations is None or delegations.succinct_roles is None:
        raise CarryFault(
            "bad metadata", "targets.json", "no succinct hashed bins: not a tilsit origin"
        )
    succinct = delegations.succinct_roles
    for name in succinct.get_roles():
        # The origin chooses the bins' name prefix, and each bin is written as a file.
        try:
            tree_path(index, f"tuf/1.{name}.json")
        except UnsafeTreePath as exc:
            raise CarryFault(UNSAFE_PATH, f"{name}.json", exc.reason) from exc
    try:
        for probe in probe_paths(succinct).values():
            updater.get_targetinfo(probe)
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
        raise CarryFault(_fault_of(exc), "bins", f"{type(exc).__name__}: {exc}") from exc
    listed: dict[str, TargetFile] = {}
    bins: dict[str, bytes] = {}
    for name in succinct.get_roles():
        raw = (metadata_dir / f"{name}.json").read_bytes()
        bins[name] = raw
        listed.update(Metadata[Targets].from_bytes(raw).signed.targets)

    # Every path checked before anything is fetched or written; every target
    # checked against its signed hashes before anything is published.
    targets = _checked_targets(index, private, listed)
    pages: dict[_Target, bytes] = {}
    files: dict[_Target, int] = {}  # checked files: their sizes
    fetched = 0
    for target in targets:
        path, sha256, info = target.path, target.sha256, listed[target.path]
        if target.is_file:
            files[target] = _check_file(blobs, path, info, sha256, updater, downloads, reusable)
            continue
        local = tree.read(target.hashed)
        if (
            local is not None
            and len(local) == info.length
            and hashlib.sha256(local).hexdigest() == sha256
        ):
            pages[target] = local
            continue
        try:
            got = updater.download_target(info, str(downloads / "page"))
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
            raise CarryFault(_fault_of(exc), path, f"{type(exc).__name__}: {exc}") from exc
        data = Path(got).read_bytes()
        for href, _meta in (
            page_links(path, data) if path.rsplit("/", 1)[-1] in (PAGE_HTML, PAGE_JSON) else []
        ):
            if urlsplit(href).netloc:
                raise AbsoluteLinks(f"{path} links {href}")
        pages[target] = data
        fetched += 1

    root_versions = _root_chain(fetcher, base, metadata_dir)
    _publish(tree, index, pages, files, blobs, metadata_dir, bins, root_versions, previous)
    timestamp = Metadata[Timestamp].from_file(str(metadata_dir / "timestamp.json"))
    return Carried(
        options={
            "mode": CARRIED,
            "upstream": upstream,
            "trust": trust,
            "root_sha256": hashlib.sha256(root).hexdigest(),
        },
        root=root,
        timestamp_version=timestamp.signed.version,
        targets=len(listed),
        fetched_pages=fetched,
    )


def _check_file(
    blobs: BlobStore,
    path: str,
    info: TargetFile,
    sha256: str,
    updater: Updater,
    downloads: Path,
    reusable: Callable[[str], bool],
) -> int:
    if not (reusable(sha256) and blobs.exists(sha256)):
        # Signed after the sync read the origin's page (an upload in between): fetch it verified.
        try:
            got = updater.download_target(info, str(downloads / "file"))
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
            raise CarryFault(_fault_of(exc), path, f"{type(exc).__name__}: {exc}") from exc
        blobs.put_file(Path(got), sha256)
    size = blobs.size(sha256)
    if size != info.length:
        raise CarryFault(
            "tampered file", path, f"the stored blob has {size} bytes, signed {info.length}"
        )
    return size


def _root_chain(fetcher: FetcherInterface, base: str, metadata_dir: Path) -> list[bytes]:
    """Every ``N.root.json`` up to the trusted one, each signed by its predecessor."""
    current = (metadata_dir / "root.json").read_bytes()
    last = Metadata[Root].from_bytes(current).signed.version
    chain: list[bytes] = []
    previous: Metadata[Root] | None = None
    for version in range(1, last + 1):
        raw = (
            current
            if version == last
            else _fetch(fetcher, f"{base}tuf/{version}.root.json", 512_000)
        )
        md = Metadata[Root].from_bytes(raw)
        if md.signed.version != version:
            raise CarryFault(
                "broken root chain", f"{version}.root.json", f"holds version {md.signed.version}"
            )
        try:
            if previous is not None:
                previous.verify_delegate(Root.type, md)
            md.verify_delegate(Root.type, md)
        except tuf_errors.UnsignedMetadataError as exc:
            raise CarryFault("broken root chain", f"{version}.root.json", str(exc)) from exc
        chain.append(raw)
        previous = md
    return chain


def _publish(
    tree: Tree,
    index: str,
    pages: dict[_Target, bytes],
    files: dict[_Target, int],
    blobs: BlobStore,
    metadata_dir: Path,
    bins: dict[str, bytes],
    roots: list[bytes],
    previous: Mapping[str, Any],
) -> None:
    # 1. Targets under their hashed names (what TUF clients fetch), and the plain
    #    file names pip fetches: nothing yet links to them.
    for target, data in pages.items():
        if tree.read(target.hashed) != data:
            tree.write(target.hashed, data)
    for target, size in files.items():
        # Core metadata as bytes, a file as its blob (a pointer on S3: store/blobfile.py).
        if target.path.endswith(".metadata"):
            place_small_blob(tree, target.plain, blobs, target.sha256, size)
        else:
            place_blob(tree, target.plain, blobs, target.sha256, size)
        tree.link(target.hashed, tree.path(target.plain))
    # 2. The origin's metadata bytes, unchanged; the timestamp last (the commit point).
    directory = tuf_dir(index)
    written: set[str] = set()

    def put(name: str, raw: bytes) -> None:
        written.add(name)
        if name in ("root.json", "timestamp.json"):  # replaced in place: never compressed
            if tree.read(f"{directory}/{name}") != raw:
                tree.write(f"{directory}/{name}", raw)
            return
        # Served gzip-compressed as the origin serves its own (trust.compressed).
        if len(raw) >= GZIP_MIN:
            written.add(f"{name}.gz")
        if tree.read(f"{directory}/{name}") != raw or (
            len(raw) >= GZIP_MIN and not tree.path(f"{directory}/{name}.gz").exists()
        ):
            write_metadata(tree, f"{directory}/{name}", raw)

    for number, raw in enumerate(roots, 1):
        put(f"{number}.root.json", raw)
    put("root.json", roots[-1])
    targets_raw = (metadata_dir / "targets.json").read_bytes()
    put(f"{Metadata[Targets].from_bytes(targets_raw).signed.version}.targets.json", targets_raw)
    for name, raw in bins.items():
        put(f"{Metadata[Targets].from_bytes(raw).signed.version}.{name}.json", raw)
    snapshot_raw = (metadata_dir / "snapshot.json").read_bytes()
    put(f"{Metadata[Snapshot].from_bytes(snapshot_raw).signed.version}.snapshot.json", snapshot_raw)
    put("timestamp.json", (metadata_dir / "timestamp.json").read_bytes())
    # 3. The plain page names pip fetches, now that the signed snapshot lists them.
    for target, data in pages.items():
        if tree.read(target.plain) != data:
            tree.write(target.plain, data)
    _drop_unlisted_pages(tree, index, {target.path for target in pages})
    if previous.get("mode") != CARRIED:
        # Metadata this server signed before it carried the origin's: another root's.
        for entry in tree.path(directory).iterdir():
            if entry.is_file() and entry.name not in written:
                entry.unlink()


def _drop_unlisted_pages(tree: Tree, index: str, listed: set[str]) -> None:
    """Plain project pages the origin no longer signs (deleted projects)."""
    simple = tree.path(f"{index}/simple")
    if not simple.is_dir():
        return
    for project in simple.iterdir():
        if not project.is_dir():
            continue
        for page in (PAGE_HTML, PAGE_JSON):
            target = f"simple/{project.name}/{page}"
            if target not in listed and (project / page).is_file():
                tree.remove(f"{index}/{target}")


def state_dir_for(data: Path, index: str) -> Path:
    return data / "mirror-tuf" / index


def reset_state(data: Path, index: str) -> None:
    shutil.rmtree(state_dir_for(data, index), ignore_errors=True)


def root_text(path: Path) -> str:
    """A pinned root file's text, refused unless it is TUF root metadata."""
    raw = path.read_bytes()
    try:
        Metadata[Root].from_bytes(raw)
    except Exception as exc:  # any parse failure is the same refusal
        raise ValueError(f"{path}: not TUF root metadata: {exc}") from exc
    return raw.decode()


def carried_indexes(session: Session) -> set[str]:
    """Names of the indexes whose metadata is their origin's (never signed here)."""
    rows = session.execute(select(IndexRow.name, IndexRow.options).where(IndexRow.kind == "mirror"))
    return {name for name, options in rows if carries(options or {})}


RESIGNED_FIELD = "x-tilsit-resigned"


def mark_resigned(tree: Tree, keys: KeySet, index: str, marker: Mapping[str, Any]) -> str | None:
    """Put ``marker`` into the index's latest root as the signed ``x-tilsit-resigned`` field.

    The root keeps its version and keys (re-signed in place by the root keys, so
    root N-1 still vouches for it and clients holding the unmarked bytes are not
    disturbed). Returns why it could not be signed (root keys kept offline), else None.
    """
    directory = tuf_dir(index)
    versions = sorted(
        parsed[0]
        for entry in tree.path(directory).glob("*.root.json")
        if (parsed := versioned(entry.name)) is not None
    )
    if not versions:
        return "the index has no root yet"
    latest = versions[-1]
    raw = tree.read(f"{directory}/{latest}.root.json")
    assert raw is not None
    md = Metadata[Root].from_bytes(raw)
    if md.signed.unrecognized_fields.get(RESIGNED_FIELD) == dict(marker):
        return None
    try:
        signers = root_signers(keys, keys_dir(keys.data))
    except (KeyError_, OSError) as exc:
        return f"root keys unavailable here: {exc}"
    md.signed.unrecognized_fields[RESIGNED_FIELD] = dict(marker)
    md.signatures.clear()
    for signer in signers:
        md.sign(signer, append=True)
    if latest > 1:
        previous = tree.read(f"{directory}/{latest - 1}.root.json")
        assert previous is not None
        Metadata[Root].from_bytes(previous).verify_delegate(Root.type, md)
    tree.write(f"{directory}/{latest}.root.json", md.to_bytes(SERIALIZER))
    return None
