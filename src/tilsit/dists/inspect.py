"""What an uploaded wheel or sdist must satisfy, and what the index keeps from it.

:func:`inspect_distribution` reads the archive with the strict readers (never extracting it),
finds the core metadata where the specs put it, validates it, and checks that it names the
same project and version as the filename.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.metadata import Metadata
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tilsit.dists.errors import (
    InvalidLayout,
    InvalidWheelFile,
    MetadataMismatch,
    MissingMetadata,
)
from tilsit.dists.limits import DEFAULT_LIMITS, Limits
from tilsit.dists.members import Archive
from tilsit.dists.metadata import parse_metadata
from tilsit.dists.tarread import read_tar_gz
from tilsit.dists.zipread import read_zip
from tilsit.spec.filenames import DistFilename

__all__ = ["DistInfo", "inspect_distribution", "wheel_metadata"]

_DIST_INFO = ".dist-info"
_WHEEL_FILES = ("METADATA", "WHEEL")
_WHEEL_VERSION = re.compile(r"(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class DistInfo:
    """What the index keeps from a distribution it accepts."""

    metadata_bytes: bytes  # raw METADATA (wheel) or PKG-INFO (sdist), exactly as in the archive
    metadata: Metadata  # parsed and validated
    name: str  # Name as written in the metadata
    version: Version
    requires_python: str | None  # Requires-Python as written (stripped), or None
    summary: str | None


def inspect_distribution(
    path: Path, filename: DistFilename, limits: Limits = DEFAULT_LIMITS
) -> DistInfo:
    """Read the distribution at ``path``, uploaded as ``filename``, and validate it.

    Raises an :class:`~tilsit.dists.InvalidDistribution` subclass whose message tells the
    uploader what is wrong.
    """
    if filename.packagetype == "bdist_wheel":
        metadata_bytes, source = _wheel_metadata(path, filename, limits)
    else:
        metadata_bytes, source = _sdist_metadata(path, filename, limits)
    parsed = parse_metadata(metadata_bytes, source=source)
    metadata = parsed.metadata
    if canonicalize_name(metadata.name) != filename.name:
        raise MetadataMismatch("name", filename.name, metadata.name)
    if metadata.version != filename.version:
        raise MetadataMismatch("version", str(filename.version), str(metadata.version))
    requires_python = (parsed.raw.get("requires_python") or "").strip()
    return DistInfo(
        metadata_bytes=metadata_bytes,
        metadata=metadata,
        name=metadata.name,
        version=metadata.version,
        requires_python=requires_python or None,
        summary=parsed.raw.get("summary"),
    )


def wheel_metadata(path: Path, filename: DistFilename, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The raw METADATA of the wheel at ``path``, read as an upload's is (same checks, caps).

    For a mirror or proxy, whose wheels come from an upstream: the same strict
    reader, without the index's rules on the metadata's content (the upstream's
    file is served whatever its classifiers say).
    """
    return _wheel_metadata(path, filename, limits)[0]


def _wheel_metadata(path: Path, filename: DistFilename, limits: Limits) -> tuple[bytes, str]:
    """METADATA from the wheel's one top-level ``.dist-info``, after checking its WHEEL file."""
    archive = read_zip(path, limits, keep=_is_wheel_metadata)
    dist_infos = _dist_info_dirs(archive)
    expected = f"{canonicalize_name(filename.name).replace('-', '_')}-{filename.version}"
    if not dist_infos:
        raise MissingMetadata(
            f"The wheel has no .dist-info directory; its metadata belongs in"
            f" {expected}{_DIST_INFO}/METADATA."
        )
    if len(dist_infos) > 1:
        raise InvalidLayout(
            f"The wheel has {len(dist_infos)} .dist-info directories"
            f" ({', '.join(dist_infos)}); a wheel has exactly one."
        )
    dist_info = dist_infos[0]
    if not _names_distribution(dist_info[: -len(_DIST_INFO)], filename):
        raise InvalidLayout(
            f"The wheel's metadata directory is {dist_info!r}, which is not for"
            f" {filename.name} {filename.version}; expected {expected}{_DIST_INFO}."
        )
    for file in _WHEEL_FILES:
        if f"{dist_info}/{file}" not in archive.kept:
            raise MissingMetadata(f"The wheel has no {dist_info}/{file} file.")
    _check_wheel_file(archive.kept[f"{dist_info}/WHEEL"], f"{dist_info}/WHEEL")
    return archive.kept[f"{dist_info}/METADATA"], f"{dist_info}/METADATA"


def _is_wheel_metadata(name: str) -> bool:
    top, _, file = name.partition("/")
    return top.endswith(_DIST_INFO) and file in _WHEEL_FILES


def _dist_info_dirs(archive: Archive) -> list[str]:
    found = set()
    for member in archive.members:
        top, slash, _ = member.name.partition("/")
        if top.endswith(_DIST_INFO) and (slash or member.is_dir):
            found.add(top)
    return sorted(found)


def _names_distribution(stem: str, filename: DistFilename) -> bool:
    """Whether a ``<name>-<version>`` stem names the filename's project and version."""
    name, dash, version = stem.rpartition("-")
    if not dash:
        return False
    try:
        return canonicalize_name(name) == filename.name and Version(version) == filename.version
    except InvalidVersion:
        return False


def _check_wheel_file(data: bytes, where: str) -> None:
    """The WHEEL file must give one Wheel-Version, of major version 1 (PEP 427)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWheelFile(f"{where} is not UTF-8.") from None
    message = email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)
    versions = message.get_all("Wheel-Version") or []
    if len(versions) != 1:
        raise InvalidWheelFile(f"{where} must give exactly one Wheel-Version.")
    match = _WHEEL_VERSION.fullmatch(str(versions[0]).strip())
    if match is None or match.group(1) != "1":
        raise InvalidWheelFile(
            f"{where} gives Wheel-Version {str(versions[0]).strip()!r}; this index reads wheels"
            " of version 1.x only, as installers do."
        )


def _sdist_metadata(path: Path, filename: DistFilename, limits: Limits) -> tuple[bytes, str]:
    """PKG-INFO from the sdist's one top-level directory, named for the filename (PEP 625)."""
    top = filename.filename[: -len(".tar.gz")]
    pkg_info = f"{top}/PKG-INFO"
    archive = read_tar_gz(path, limits, keep=lambda name: name == pkg_info)
    for member in archive.members:
        if member.name != top and not member.name.startswith(f"{top}/"):
            raise InvalidLayout(
                f"Member {member.name!r} is outside the sdist's top-level directory {top}/;"
                " every file of an sdist lies in that one directory."
            )
    if pkg_info not in archive.kept:
        raise MissingMetadata(f"The sdist has no {pkg_info} file.")
    return archive.kept[pkg_info], pkg_info
