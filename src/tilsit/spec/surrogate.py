"""Surrogate keys: the cache tags that name what a response belongs to.

A cache in front of the tree (a CDN, nginx ``proxy_cache``) keeps a response under
the keys tilsit sends in ``Surrogate-Key`` (Fastly, Varnish) and ``Cache-Tag``
(Cloudflare, Akamai), and tilsit purges by the same keys after a render. One
grammar serves both, so the keys the server sends, the keys nginx derives from a
URI and the keys a purge names are always the same strings:

- ``index:<index>`` on every response of an index (its pages, legacy JSON, TUF
  metadata, files and their ``.metadata``, browse pages);
- ``list:<index>`` on its project list (``/simple/``), which every new project changes;
- ``project:<index>/<project>`` on every page about one project of it (its simple
  pages, legacy JSON, browse pages);
- ``tuf:<index>`` on its TUF metadata, which every render signs anew.

Files are named by their hash and never change: they carry ``index:<index>``
only, and a purge after a removal names the whole index (removals are rare; an
upload or a yank purges the list and the project alone).

Index names are taken as they are (already lower case and safe), project names
normalized (PEP 503); a key holds only ``a-z 0-9 . _ -``
and the ``:`` and ``/`` of the grammar, so it never needs quoting in a header
(keys are separated by spaces). A key longer than :data:`MAX_KEY` keeps its start
and ends in a digest of the whole, so two long names never share a key.
Files under the shared ``/packages/`` belong to whichever public index lists them:
they carry the pseudo-index :data:`SHARED` (``packages`` is no index name: the
path is taken).
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "MAX_KEY",
    "SHARED",
    "index_key",
    "join_keys",
    "keys_for",
    "list_key",
    "project_key",
    "tuf_key",
]

MAX_KEY = 128
SHARED = "packages"
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def _index(value: str) -> str:
    """An index name as a key holds it: index names are already lower case and safe
    (``a-z 0-9 . _ -``), so it is the name itself, and nginx can take it from the URI."""
    return _UNSAFE.sub("-", value.lower()) or "-"


def _project(value: str) -> str:
    """A project name as a key holds it: normalized (PEP 503), as its URLs spell it."""
    return _UNSAFE.sub("-", re.sub(r"[-_.]+", "-", value).lower()) or "-"


def _bounded(key: str) -> str:
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: MAX_KEY - 17]}-{digest}"


def index_key(index: str) -> str:
    return _bounded(f"index:{_index(index)}")


def list_key(index: str) -> str:
    return _bounded(f"list:{_index(index)}")


def tuf_key(index: str) -> str:
    return _bounded(f"tuf:{_index(index)}")


def project_key(index: str, project: str) -> str:
    return _bounded(f"project:{_index(index)}/{_project(project)}")


def keys_for(index: str, project: str | None = None) -> list[str]:
    """The keys of a response (or a change) about ``index`` and maybe one ``project``."""
    keys = [index_key(index)]
    if project:
        keys.append(project_key(index, project))
    return keys


def join_keys(keys: list[str]) -> str:
    """One header value: the keys in order, each once, separated by spaces."""
    return " ".join(dict.fromkeys(keys))
