"""The parts of a project's pages that one release contributes, kept between renders.

A project's simple pages and its legacy JSON list every file of every release, so
they are rewritten whole at each upload into it; with 2,000 releases, encoding
every file again was most of an upload's time. Each release's part (its files'
PEP 691 entries, PEP 503 anchors and legacy JSON list) is a pure function of the
release as loaded and of where its files are linked, so it is kept under exactly
that key: a release that changed in any way is a new key, and nothing needs to be
told to forget it. The pages are then joined from the parts
(:func:`tilsit.spec.simple.project_json_from_parts`,
:func:`tilsit.render.legacy.project_json`), byte for byte what encoding them whole
gives.

Only releases of large projects are kept (a small project costs little to encode),
and the whole is bounded by the files it holds, least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from tilsit.render.legacy import release_files_json
from tilsit.render.pages import release_files
from tilsit.render.snapshot import ProjectSnap, ReleaseSnap
from tilsit.spec.simple import file_html, file_json

__all__ = ["PageParts", "ReleaseParts"]

# Projects with fewer files than this are encoded whole at each render.
KEEP_FROM_FILES = 200
# What all kept parts may hold, in files: about 2 kB each (three encodings and
# the release they are keyed on), so about 40 MB at most.
MAX_FILES = 20_000


@dataclass(frozen=True, slots=True)
class ReleaseParts:
    simple_json: tuple[str, ...]  # one per live file, in page order
    simple_html: tuple[str, ...]
    legacy_files: str  # the release's entry under the legacy JSON's "releases"


def _encode(release: ReleaseSnap, base_url: str, root: str) -> ReleaseParts:
    files = release_files(release, base_url, root)
    return ReleaseParts(
        simple_json=tuple(map(file_json, files)),
        simple_html=tuple(map(file_html, files)),
        legacy_files=release_files_json(release, base_url, root),
    )


_Key = tuple[ReleaseSnap, str, str]


class PageParts:
    """Release parts by (release as loaded, base URL, files root): see the module."""

    def __init__(self, max_files: int = MAX_FILES, keep_from: int = KEEP_FROM_FILES) -> None:
        self.max_files = max_files
        self.keep_from = keep_from
        self._kept: OrderedDict[_Key, ReleaseParts] = OrderedDict()
        self._files = 0
        self._lock = threading.Lock()

    def of(self, project: ProjectSnap, base_url: str) -> dict[str, ReleaseParts]:
        """Each live release's parts, by version, in version order."""
        releases = project.live_releases
        keep = sum(len(r.files) for r in releases) >= self.keep_from
        return {r.version: self._get((r, base_url, project.files_root), keep) for r in releases}

    def _get(self, key: _Key, keep: bool) -> ReleaseParts:
        if keep:
            with self._lock:
                parts = self._kept.get(key)
                if parts is not None:
                    self._kept.move_to_end(key)
                    return parts
        parts = _encode(*key)
        if keep:
            with self._lock:
                if key not in self._kept:
                    self._kept[key] = parts
                    self._files += len(key[0].files)
                self._evict()
        return parts

    def _evict(self) -> None:
        while self._files > self.max_files and self._kept:
            key, _parts = self._kept.popitem(last=False)
            self._files -= len(key[0].files)

    @property
    def files(self) -> int:
        """How many files the kept parts are of."""
        return self._files

    def __len__(self) -> int:
        return len(self._kept)
