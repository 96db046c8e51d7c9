"""Projects the renderer could not render: kept on disk, shown by ``/_/health``.

One project that cannot be rendered (a name the tree cannot hold, a directory
taken by a file, a blob gone missing) must not stop the journal, the other
projects, TUF or start-up, so the renderer skips it and records it here. The
record lives in the data directory, beside ``render.lock``, so that every
worker and every CLI command sees the same list; it is written only under the
render lock, and replaced atomically, so a reader never sees half of it. A
later successful render of the project removes its entry.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RenderFailure", "RenderFailures", "describe"]

# An error message in the report is cut to this many characters: a message may
# quote the name or path that failed, and those are unbounded in old data.
_MESSAGE_MAX = 500


@dataclass(frozen=True, slots=True)
class RenderFailure:
    index: str
    project: str | None  # None: the index's own pages or its TUF round failed
    error: str
    serial: int  # the journal serial whose render failed
    since: str  # ISO 8601, when it first failed

    @property
    def key(self) -> str:
        return f"{self.index}/{self.project or ''}"

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "project": self.project,
            "error": self.error,
            "serial": self.serial,
            "since": self.since,
        }


def describe(exc: BaseException) -> str:
    message = f"{type(exc).__name__}: {exc}"
    return message if len(message) <= _MESSAGE_MAX else message[: _MESSAGE_MAX - 3] + "..."


class RenderFailures:
    """The report file; ``load`` and ``save`` are the only disk access."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, RenderFailure]:
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # a torn or foreign file: the next render writes a good one
        failures: dict[str, RenderFailure] = {}
        for entry in raw if isinstance(raw, list) else []:
            try:
                failure = RenderFailure(
                    str(entry["index"]),
                    None if entry["project"] is None else str(entry["project"]),
                    str(entry["error"]),
                    int(entry["serial"]),
                    str(entry["since"]),
                )
            except (KeyError, TypeError, ValueError):
                continue
            failures[failure.key] = failure
        return failures

    def save(self, failures: dict[str, RenderFailure]) -> None:
        if not failures and not self.path.exists():
            return
        data = json.dumps(
            [f.as_json() for f in sorted(failures.values(), key=lambda f: f.key)], indent=1
        ).encode()
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=".render-failures-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(name, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
