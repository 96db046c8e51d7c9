"""``Surrogate-Key`` and ``Cache-Tag`` on every read response (:mod:`tilsit.spec.surrogate`).

The keys come from the URL path alone, as nginx derives them from the URI, so a
response has the same keys whichever of the two serves it. They are added to every
status of a read, a 404 included: a cache that keeps a miss must drop it once the
project appears.
"""

from __future__ import annotations

from tilsit.spec.surrogate import SHARED, index_key, join_keys, list_key, project_key, tuf_key
from tilsit.web.asgi import Message, Scope, Send

__all__ = ["keys_for_path", "with_surrogate_keys"]

_READ_METHODS = ("GET", "HEAD")
# First segments that are areas of the default index when they lead the path.
_DEFAULT_AREAS = frozenset(("simple", "pypi", "project"))
_NOT_INDEXES = frozenset(("_", "osv", "account", "admin", "legacy"))


def keys_for_path(path: str, default_index: str) -> list[str]:
    """The keys of the response to a GET of ``path``; none for paths of no index."""
    parts = path.split("/")[1:]
    if not parts or parts[0] in _NOT_INDEXES:
        return []
    if parts[0] == "packages":
        return [index_key(SHARED)]
    if parts[0] in _DEFAULT_AREAS:
        index, rest = default_index, parts
    elif parts[0] == "":
        return []  # the server's home page: no one index
    else:
        index, rest = parts[0], parts[1:]
    keys = [index_key(index)]
    area = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    if area in ("simple", "pypi", "project") and name:
        keys.append(project_key(index, name))
    elif area == "simple":
        keys.append(list_key(index))
    elif area == "tuf":
        keys.append(tuf_key(index))
    return keys


def with_surrogate_keys(scope: Scope, send: Send, default_index: str) -> Send:
    """``send`` adding the keys of ``scope``'s path to its response."""
    if scope["method"] not in _READ_METHODS:
        return send
    keys = keys_for_path(scope["path"], default_index)
    if not keys:
        return send
    # Surrogate-Key separates keys by spaces (Fastly), Cache-Tag by commas (Cloudflare).
    value = join_keys(keys).encode()
    tags = ",".join(dict.fromkeys(keys)).encode()

    async def tagged(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (k, v)
                for k, v in message.get("headers", [])
                if k.lower() not in (b"surrogate-key", b"cache-tag")
            ]
            message = {
                **message,
                "headers": [*headers, (b"surrogate-key", value), (b"cache-tag", tags)],
            }
        await send(message)

    return tagged
