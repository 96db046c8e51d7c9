"""Where TUF metadata and targets live in the tree, and which paths may be targets.

Target paths are relative to the index base (``simple/<p>/index.html``,
``packages/<aa>/<bb>/<rest>/<file>``), so the signatures do not name the index and
a copy under another name still verifies.
"""

from __future__ import annotations

import re

from tilsit.spec.filenames import FILENAME_CHARACTERS

__all__ = [
    "HASHED_NAME",
    "file_target",
    "hashed_path",
    "is_hashed",
    "page_target",
    "signable",
    "tuf_dir",
]

# Neither python-tuf's ngclient nor tuf-js percent-encodes target paths, so a
# path with any other character would be requested raw and not found. Filenames
# are held to the same characters (uploads and syncs refuse others), so every
# served file is a target; what is checked here is what the tree held before.
_TARGET_PATH = re.compile(f"[{FILENAME_CHARACTERS}/]+")
HASHED_NAME = re.compile(r"[0-9a-f]{64}\.")


def signable(path: str) -> bool:
    """Whether ``path`` can be a TUF target (other files are served unsigned)."""
    if _TARGET_PATH.fullmatch(path) is None:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def is_hashed(name: str) -> bool:
    """Whether a file name is a consistent-snapshot ``<sha256>.<name>`` link."""
    return HASHED_NAME.match(name) is not None


def tuf_dir(index: str) -> str:
    """Tree-relative directory of an index's TUF metadata (served at ``/<index>/tuf/``)."""
    return f"{index}/tuf"


def hashed_path(index: str, target: str, sha256: str) -> str:
    """Tree-relative path of the ``<sha256>.<name>`` link clients fetch for ``target``."""
    directory, _, name = target.rpartition("/")
    return f"{index}/{directory}/{sha256}.{name}" if directory else f"{index}/{sha256}.{name}"


def page_target(project: str | None, page: str) -> str:
    """Target path of a simple page: the index list (``project`` None) or a project's."""
    return f"simple/{page}" if project is None else f"simple/{project}/{page}"


def file_target(sha256: str, filename: str) -> str:
    """Target path of a distribution file (add ``.metadata`` for its core metadata)."""
    return f"packages/{sha256[:2]}/{sha256[2:4]}/{sha256[4:]}/{filename}"
