"""What a mirror or proxy learns from a fetched file's own bytes, beyond what its page said.

Upstreams such as pypiserver, devpi or a plain directory tree list a file with
its sha256 at most: no core-metadata file (PEP 658), no ``requires-python``, no
md5 or blake2. Hosted uploads have all of these, read from the file itself, and
clients rely on them (pip and uv resolve from ``.metadata`` files and skip by
``requires-python``; poetry and pip-audit read the legacy JSON's ``info``). So
a fetched file is read the way an upload is:

- :class:`BodyHashes` computes sha256, md5 and blake2b-256 in the one pass that
  streams the body to disk (no second read);
- :func:`wheel_core_metadata` reads a wheel's METADATA with the upload path's
  reader (:func:`tilsit.dists.wheel_metadata`: never extracted, under its size
  caps, since an upstream's wheel is hostile input like any upload) and checks
  it names the file's project and version. A wheel whose METADATA cannot be read
  is still mirrored (the file is what the upstream serves), only without a
  ``.metadata`` file; the reason is returned for the log;
- :func:`read_facts` puts the two together for one verified file, and also
  serves a blob reused from the store (another index fetched it): that one is
  read once, as no body streamed in to hash.

Sdists are not read: an upload's PKG-INFO is kept for the legacy JSON but never
served as ``.metadata`` (its fields may be dynamic), and a mirrored file's stored
metadata is served as ``.metadata``, so a mirror would claim a reliability the
upstream never claimed. A release's legacy JSON ``info`` comes from its wheel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.metadata import parse_email
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tilsit.dists import InvalidDistribution, Limits, wheel_metadata
from tilsit.index.upstream import FileFacts
from tilsit.spec.filenames import InvalidDistFilename, parse_dist_filename

__all__ = ["BodyHashes", "CoreMetadata", "read_facts", "wheel_core_metadata"]

_CHUNK = 1 << 20


class BodyHashes:
    """sha256, md5 and blake2b-256 of a body, fed chunk by chunk as it streams."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._blake2 = hashlib.blake2b(digest_size=32)

    def update(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        self._md5.update(chunk)
        self._blake2.update(chunk)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    @property
    def blake2_256(self) -> str:
        return self._blake2.hexdigest()


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    """A fetched wheel's METADATA, or why there is none to serve."""

    data: bytes | None  # the METADATA bytes exactly as in the wheel
    requires_python: str | None = None  # its Requires-Python, when a valid specifier
    problem: str | None = None  # why ``data`` is None, or why requires_python was dropped


def wheel_core_metadata(path: Path, filename: str, limits: Limits | None = None) -> CoreMetadata:
    """The METADATA of the fetched wheel at ``path``, listed upstream as ``filename``.

    Never raises for what the file holds: an unreadable wheel gives
    ``CoreMetadata(None, problem=...)``.
    """
    try:
        dist = parse_dist_filename(filename)
    except InvalidDistFilename as exc:
        return CoreMetadata(None, problem=f"not read: {exc}")
    if dist.packagetype != "bdist_wheel":
        return CoreMetadata(None, problem="not read: not a wheel")
    try:
        data = wheel_metadata(path, dist, limits or Limits())
    except InvalidDistribution as exc:
        return CoreMetadata(None, problem=f"METADATA not readable: {exc}")
    try:
        raw, _unparsed = parse_email(data)
    except ValueError as exc:  # packaging's parser is lenient; this is belt and braces
        return CoreMetadata(None, problem=f"METADATA not parsable: {exc}")
    name, version = raw.get("name"), raw.get("version")
    if not raw.get("metadata_version") or not name or not version:
        return CoreMetadata(None, problem="METADATA lacks Metadata-Version, Name or Version")
    try:
        same_version = Version(version) == dist.version
    except InvalidVersion:
        same_version = False
    if canonicalize_name(name) != dist.name or not same_version:
        # pip refuses metadata that disagrees with the file name; serving it would
        # make a resolver fail where the wheel alone would say the same later.
        return CoreMetadata(
            None, problem=f"METADATA names {name} {version}, not {dist.name} {dist.version}"
        )
    requires = (raw.get("requires_python") or "").strip()
    if not requires:
        return CoreMetadata(data)
    try:
        SpecifierSet(requires)
    except InvalidSpecifier:
        return CoreMetadata(data, problem=f"Requires-Python {requires!r} is not a specifier")
    return CoreMetadata(data, requires)


def read_facts(
    path: Path,
    filename: str,
    *,
    hashes: BodyHashes | None,
    read_metadata: bool,
    store: Callable[[bytes], str],
) -> tuple[FileFacts, str | None]:
    """The :class:`FileFacts` of the verified file at ``path``, and a problem to report.

    ``hashes``: the digests computed while the body streamed in; None for a blob
    already stored (reused, not fetched), which is then read once to hash it.
    With ``read_metadata`` (a wheel whose upstream offers no core metadata) its
    METADATA is read and put in the blob store with ``store`` before any row
    names it.
    """
    if hashes is None:
        hashes = BodyHashes()
        with path.open("rb") as body:
            while chunk := body.read(_CHUNK):
                hashes.update(chunk)
    facts = FileFacts(hashes.md5, hashes.blake2_256)
    if not read_metadata or not filename.endswith(".whl"):
        return facts, None
    found = wheel_core_metadata(path, filename)
    if found.data is None:
        return facts, f"{found.problem}; served without .metadata"
    problem = f"{found.problem}; listed without requires-python" if found.problem else None
    return FileFacts(facts.md5, facts.blake2_256, store(found.data), found.requires_python), problem
