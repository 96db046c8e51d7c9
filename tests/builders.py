"""Build small, valid wheels and sdists in memory for tests.

Tests that need a hostile archive start from these and break one thing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name


@dataclass
class Dist:
    filename: str
    data: bytes

    def write(self, directory: Path) -> Path:
        path = directory / self.filename
        path.write_bytes(self.data)
        return path

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Meta:
    name: str
    version: str
    summary: str = "A test distribution"
    requires_python: str | None = None
    requires_dist: list[str] = field(default_factory=list)
    metadata_version: str = "2.1"
    extra: list[tuple[str, str]] = field(default_factory=list)

    def render(self) -> bytes:
        lines = [
            f"Metadata-Version: {self.metadata_version}",
            f"Name: {self.name}",
            f"Version: {self.version}",
            f"Summary: {self.summary}",
        ]
        if self.requires_python is not None:
            lines.append(f"Requires-Python: {self.requires_python}")
        lines += [f"Requires-Dist: {req}" for req in self.requires_dist]
        lines += [f"{key}: {value}" for key, value in self.extra]
        return ("\n".join(lines) + "\n\n").encode()


def _escape(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    metadata: bytes | None = None,
    members: dict[str, bytes] | None = None,
    **meta: object,
) -> Dist:
    """A valid pure wheel; ``metadata`` overrides the rendered METADATA bytes."""
    stem = f"{_escape(name)}-{version}"
    dist_info = f"{stem}.dist-info"
    if metadata is None:
        metadata = Meta(name, version, **meta).render()  # type: ignore[arg-type]
    package = _escape(name)
    contents: dict[str, bytes] = {
        f"{package}/__init__.py": f"__version__ = {version!r}\n".encode(),
        **(members or {}),
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: tilsit-tests\nRoot-Is-Purelib: true\nTag: {tag}\n\n"
        ).encode(),
    }
    record = [_record_line(path, data) for path, data in contents.items()]
    record.append(f"{dist_info}/RECORD,,")
    contents[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in contents.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return Dist(f"{stem}-{tag}.whl", buffer.getvalue())


def make_sdist(
    name: str,
    version: str,
    *,
    metadata: bytes | None = None,
    members: dict[str, bytes] | None = None,
    **meta: object,
) -> Dist:
    """A valid PEP 625 sdist (``.tar.gz``) with PKG-INFO at its top."""
    stem = f"{_escape(name)}-{version}"
    if metadata is None:
        metadata = Meta(name, version, **meta).render()  # type: ignore[arg-type]
    contents = {
        f"{stem}/PKG-INFO": metadata,
        f"{stem}/pyproject.toml": (
            f'[project]\nname = "{name}"\nversion = "{version}"\n'
            '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        ).encode(),
        **(members or {}),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for path, data in contents.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 1_704_067_200
            archive.addfile(info, io.BytesIO(data))
    return Dist(f"{stem}.tar.gz", buffer.getvalue())
