"""The request path, checked once, before any route turns it into a tree path.

Every read route ends in the tree (``TreeFiles``, the read gate's private
marker, a proxy's page), so a path the filesystem cannot take (a NUL byte, a
segment longer than a file name can be) used to surface there as a 500 with a
traceback or a dropped connection, and a ``..`` segment could climb out of the
tree. The answers follow nginx's: a control character is a 400 (nginx refuses
a decoded NUL in the URI as invalid), a segment no file name can match is a
404 (nginx maps ENAMETOOLONG to 404), and so is a dot segment (nothing in the
tree is named ``.`` or ``..``; nginx resolves them, never past its root).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["NAME_MAX", "PathProblem", "path_problem"]

# The longest file name, in bytes, on the filesystems a tree lives on.
NAME_MAX = 255
# Longer paths are never in the tree (PATH_MAX is 4096 on Linux).
PATH_MAX = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class PathProblem:
    status: int
    reason: str


def path_problem(path: str) -> PathProblem | None:
    """Why ``path`` (the decoded ASGI path) cannot name anything here, or None."""
    if _CONTROL.search(path):
        return PathProblem(400, "Bad Request: the path holds a control character (NUL, CR, LF)")
    if len(path) > PATH_MAX:
        return PathProblem(404, "Not Found: the path is longer than any path here")
    for segment in path.split("/"):
        if segment in (".", ".."):
            return PathProblem(404, "Not Found: the path has a '.' or '..' segment")
        if len(segment) > NAME_MAX // 4 and len(segment.encode("utf-8", "replace")) > NAME_MAX:
            return PathProblem(
                404,
                f"Not Found: a path segment is longer than {NAME_MAX} bytes, as no name here is",
            )
    return None
