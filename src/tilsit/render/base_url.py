"""The base URL the static tree is rendered with, recorded beside it.

Pages and legacy JSON carry file URLs built on ``base_url``. Every process that
renders (the server, and CLI commands such as ``yank`` or ``mirror sync``) reads
``base_url`` from its own settings, so a command run without the server's
environment would re-render the pages it touches with other URLs: one project's
pages relative, the rest absolute, and nothing says so.

So the tree has one base URL, recorded in ``<data>/render-base-url.json`` by the
processes that own it: ``tilsit serve`` (and its workers), ``tilsit init`` and
``tilsit rebuild``. When their setting differs from the record they re-render the
whole tree with theirs and record it. Every other command renders with the
recorded one, and says so when its own setting differs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TreeBaseUrl", "choose_base_url", "record_base_url", "recorded_base_url"]

_RECORD = "render-base-url.json"


def record_path(data: Path) -> Path:
    return data / _RECORD


def recorded_base_url(data: Path) -> str | None:
    """The base URL the tree was last rendered with, or None if none is recorded."""
    try:
        raw = json.loads(record_path(data).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # An unreadable record is no record: the next owner re-renders and writes it.
        return None
    value = raw.get("base_url") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def record_base_url(data: Path, base_url: str) -> None:
    """Record ``base_url`` atomically (a crash leaves the old record or the new one)."""
    path = record_path(data)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".render-base-url-")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"base_url": base_url}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class TreeBaseUrl:
    """What a process renders with, and what it must do about the record."""

    use: str
    rerender: bool  # the tree was rendered with another base URL: render it all again
    record: bool  # write ``use`` as the tree's base URL once the tree matches it
    warning: str | None  # for a command whose own setting is not the tree's


def choose_base_url(setting: str, recorded: str | None, *, owner: bool) -> TreeBaseUrl:
    """The base URL to render with: the owner's setting, else the tree's recorded one."""
    if owner:
        return TreeBaseUrl(
            use=setting,
            rerender=recorded is not None and recorded != setting,
            record=recorded != setting,
            warning=None,
        )
    if recorded is None or recorded == setting:
        return TreeBaseUrl(use=setting, rerender=False, record=False, warning=None)
    return TreeBaseUrl(
        use=recorded,
        rerender=False,
        record=False,
        warning=(
            f"this command renders pages with the tree's base_url {recorded or '(none)'!r},"
            f" not {setting or '(none)'!r} from its own settings, so the tree keeps one set of"
            " URLs; to change it, give the new base_url to `tilsit serve` or run"
            " `tilsit rebuild` with it"
        ),
    )
