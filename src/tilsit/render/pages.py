"""Project snapshot -> the bytes of its simple pages (HTML and JSON)."""

from __future__ import annotations

from tilsit.render.snapshot import FileSnap, ProjectSnap, ReleaseSnap
from tilsit.spec.simple import ProjectPage, SimpleFile
from tilsit.store.tree import file_url

__all__ = ["simple_page"]


def _yanked(release: ReleaseSnap, f: FileSnap) -> str | None:
    """PEP 592 is per file: a file is yanked with its release or on its own (mirrors)."""
    if f.yanked:
        return f.yanked_reason
    if release.yanked:
        return release.yanked_reason
    return None


def simple_page(project: ProjectSnap, base_url: str = "") -> ProjectPage:
    files = [
        SimpleFile(
            filename=f.filename,
            url=file_url(f.sha256, f.filename, base_url, project.files_root),
            sha256=f.sha256,
            size=f.size,
            upload_time=f.upload_time,
            requires_python=f.requires_python,
            yanked=_yanked(r, f),
            metadata_sha256=f.metadata_sha256 if f.serves_metadata else None,
        )
        for r, f in project.live_files()
    ]
    return ProjectPage(
        name=project.normalized,
        serial=project.serial,
        versions=[r.version for r in project.live_releases],
        files=files,
    )
