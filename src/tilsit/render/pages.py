"""A release of a project snapshot -> the files its simple pages list."""

from __future__ import annotations

from tilsit.render.snapshot import FileSnap, ReleaseSnap
from tilsit.spec.simple import SimpleFile
from tilsit.store.tree import file_url

__all__ = ["release_files"]


def _yanked(release: ReleaseSnap, f: FileSnap) -> str | None:
    """PEP 592 is per file: a file is yanked with its release or on its own (mirrors)."""
    if f.yanked:
        return f.yanked_reason
    if release.yanked:
        return release.yanked_reason
    return None


def release_files(release: ReleaseSnap, base_url: str, root: str) -> list[SimpleFile]:
    """A release's live files as its project's simple pages list them, in upload order."""
    return [
        SimpleFile(
            filename=f.filename,
            url=file_url(f.sha256, f.filename, base_url, root),
            sha256=f.sha256,
            size=f.size,
            upload_time=f.upload_time,
            requires_python=f.requires_python,
            yanked=_yanked(release, f),
            metadata_sha256=f.metadata_sha256 if f.serves_metadata else None,
        )
        for f in release.files
        if not f.deleted
    ]
