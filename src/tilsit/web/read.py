"""The read routes: simple pages, legacy JSON and files, all from the tree."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs

from packaging.version import InvalidVersion, Version

from tilsit.config.cache_control import CacheControl
from tilsit.spec.accept import FORMATS, NotAcceptable, negotiate
from tilsit.spec.names import normalize
from tilsit.spec.simple import HTML_CSP, JSON
from tilsit.spec.versions import equal_spellings
from tilsit.store.tree import PAGE_HTML, PAGE_JSON
from tilsit.trust.layout import is_hashed, tuf_dir
from tilsit.web.asgi import Headers, Scope, Send, header, redirect, text
from tilsit.web.treefiles import TreeFiles

__all__ = ["ReadRoutes"]

# timestamp.json and root.json name the latest versions: clients must always revalidate.
_TUF_LATEST = frozenset(("timestamp.json", "root.json"))
_HTML_HEADERS = [
    (b"content-security-policy", HTML_CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
]


def accepts_gzip(value: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value admits gzip: ``gzip`` (or ``*`` when gzip is
    not named) with a q-value above 0."""
    if not value:
        return False
    weights: dict[str, float] = {}
    for item in value.split(","):
        coding, _, params = item.strip().partition(";")
        q = 1.0
        param = params.strip().lower().replace(" ", "")
        if param.startswith("q="):
            try:
                q = float(param[2:])
            except ValueError:
                q = 0.0
        weights[coding.strip().lower()] = q
    q = weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0)))
    return q > 0


def _with_query(scope: Scope, path: str) -> str:
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


class ReadRoutes:
    def __init__(
        self, files: TreeFiles, page_max_age: int, cache: CacheControl | None = None
    ) -> None:
        self.files = files
        self._negotiated: dict[str | None, str] = {}
        # Cache-Control by kind of document (docs/cdn.md).
        self.cache = cache or CacheControl.of(page_max_age)
        self.page_cache_control = self.cache.simple.encode()
        self._json = self.cache.json.encode()
        self._files = self.cache.files.encode()
        self._metadata = self.cache.metadata.encode()
        self._tuf_latest = self.cache.tuf_timestamp.encode()
        self._tuf_other = self.cache.tuf_other.encode()

    def _page_headers(self) -> Headers:
        return [(b"vary", b"Accept"), (b"cache-control", self.page_cache_control)]

    async def simple(
        self,
        scope: Scope,
        send: Send,
        index: str,
        base: str,
        rest: str,
        unrendered: Mapping[str, bytes] | None = None,
    ) -> None:
        """``base`` is the URL path of the simple root without its slash (``/main/simple``);
        ``rest`` is what follows it: "", "/", "/<name>" or "/<name>/". ``unrendered``: the
        project's pages by tree name, durable but maybe not in the tree yet (a proxy's),
        served unless the tree has them at the same serial or later."""
        head = scope["method"] == "HEAD"
        if not rest:
            await redirect(send, _with_query(scope, f"{base}/"), head=head)
            return
        parts = rest.strip("/").split("/") if rest.strip("/") else []
        if len(parts) > 1:
            await text(send, 404, f"Not Found: {scope['path']}", head=head)
            return
        if parts:
            name = parts[0]
            canonical = normalize(name)
            if canonical != name or not rest.endswith("/"):
                await redirect(send, _with_query(scope, f"{base}/{canonical}/"), head=head)
                return
            directory = f"{index}/simple/{canonical}"
        else:
            directory = f"{index}/simple"
        try:
            media_type = self._media_type(scope)
        except NotAcceptable as exc:
            await text(send, 406, f"Not Acceptable: {exc}", self._page_headers(), head=head)
            return
        page_name = PAGE_JSON if media_type == JSON else PAGE_HTML
        entry = self.files.page(f"{directory}/{page_name}")
        if unrendered is not None and parts and page_name in unrendered:
            early = TreeFiles.entry(unrendered[page_name])
            if entry is None or (entry.serial or 0) <= (early.serial or 0):
                entry = early
        if entry is None:
            what = f"project {parts[0]!r}" if parts else "this index"
            await text(
                send,
                404,
                f"Not Found: no {what} in index {index!r}",
                self._page_headers(),
                head=head,
            )
            return
        headers = self._page_headers()
        if media_type != JSON:
            headers += _HTML_HEADERS
        await self.files.send_page(scope, send, entry, headers, media_type.encode())

    async def hashed_page(self, scope: Scope, send: Send, index: str, rest: str) -> bool:
        """``rest`` after ``/<index>/simple/``: a TUF client's ``[<project>/]<sha256>.<page>``.

        Returns False (nothing sent) when ``rest`` is not such a name. The bytes never
        change under a hashed name, so they are cached for good.
        """
        parts = rest.strip("/").split("/")
        name = parts[-1]
        if rest.endswith("/") or len(parts) > 2 or not is_hashed(name):
            return False
        page = name[65:]
        if page not in (PAGE_HTML, PAGE_JSON) or (
            len(parts) == 2 and parts[0] != normalize(parts[0])
        ):
            return False
        media_type = JSON if page == PAGE_JSON else "text/html"
        entry = self.files.page(f"{index}/simple/{'/'.join(parts)}")
        if entry is None:
            await text(send, 404, f"Not Found: {scope['path']}", head=scope["method"] == "HEAD")
            return True
        headers: Headers = [(b"cache-control", self._tuf_other)]
        if media_type != JSON:
            headers += _HTML_HEADERS
        await self.files.send_page(scope, send, entry, headers, media_type.encode())
        return True

    async def tuf(self, scope: Scope, send: Send, index: str, name: str) -> None:
        """``/<index>/tuf/<name>``: the index's TUF metadata."""
        head = scope["method"] == "HEAD"
        if not name or "/" in name or name.startswith(".") or not name.endswith(".json"):
            await text(send, 404, f"Not Found: {scope['path']}", head=head)
            return
        entry = self.files.page(f"{tuf_dir(index)}/{name}", with_serial=False)
        if entry is None:
            await text(send, 404, f"Not Found: {scope['path']}", head=head)
            return
        cache = self._tuf_latest if name in _TUF_LATEST else self._tuf_other
        headers: Headers = [(b"cache-control", cache)]
        if name not in _TUF_LATEST:
            # A versioned file has its gzip copy beside it (tilsit.trust.compressed);
            # the signed hash and length are those of the plain bytes, which the
            # client has once it decoded the body.
            headers.append((b"vary", b"Accept-Encoding"))
            if accepts_gzip(header(scope, b"accept-encoding")):
                packed = self.files.page(f"{tuf_dir(index)}/{name}.gz", with_serial=False)
                if packed is not None:
                    entry = packed
                    headers.append((b"content-encoding", b"gzip"))
        await self.files.send_page(scope, send, entry, headers, b"application/json")

    def _media_type(self, scope: Scope) -> str:
        query = scope.get("query_string", b"")
        if query:
            wanted = parse_qs(query.decode("latin-1")).get("format")
            if wanted:
                # An unencoded "+" in a media type decodes to a space; that is what was meant.
                name = wanted[0].replace(" ", "+")
                if name not in FORMATS:
                    raise NotAcceptable(f"unknown format {name!r}")
                return FORMATS[name]
        accept = header(scope, b"accept")
        # Clients send the same few Accept headers over and over: remember the answers.
        known = self._negotiated.get(accept)
        if known is None:
            known = negotiate(accept)  # raises NotAcceptable, which is not remembered
            if len(self._negotiated) >= 1000:
                self._negotiated.clear()
            self._negotiated[accept] = known
        return known

    async def legacy_json(
        self, scope: Scope, send: Send, index: str, prefix: str, rest: str
    ) -> None:
        """``rest`` is what follows ``<prefix>/pypi/``: "<name>/json" or "<name>/<version>/json"."""
        head = scope["method"] == "HEAD"
        parts = rest.rstrip("/").split("/")
        if len(parts) not in (2, 3) or parts[-1] != "json":
            await text(send, 404, f"Not Found: {scope['path']}", head=head)
            return
        canonical = [normalize(parts[0])]
        if len(parts) == 3:
            try:
                canonical.append(str(Version(parts[1])))
            except InvalidVersion:
                canonical.append(parts[1])
        if canonical != parts[:-1]:
            await redirect(
                send, _with_query(scope, f"{prefix}/pypi/{'/'.join(canonical)}/json"), head=head
            )
            return
        entry = self.files.page(f"{index}/pypi/{'/'.join(canonical)}/json")
        if entry is None and len(canonical) == 2:
            # A release keeps its first-seen spelling: "3.0.0" finds the release "3.0".
            for spelling in equal_spellings(canonical[1]):
                found = f"{canonical[0]}/{spelling}/json"
                if spelling != canonical[1] and self.files.page(f"{index}/pypi/{found}"):
                    await redirect(send, _with_query(scope, f"{prefix}/pypi/{found}"), head=head)
                    return
        if entry is None:
            await text(send, 404, f"Not Found: {'/'.join(canonical)} in index {index!r}", head=head)
            return
        headers: Headers = [
            (b"cache-control", self._json),
            (b"access-control-allow-origin", b"*"),
        ]
        await self.files.send_page(scope, send, entry, headers, b"application/json")

    async def package_file(self, scope: Scope, send: Send, path: str, root: str = "") -> None:
        """``path`` is the URL path: /packages/<aa>/<bb>/<rest>/<filename>[.metadata];
        ``root`` is where its ``packages/`` is in the tree ("" or a private "<index>/")."""
        head = scope["method"] == "HEAD"
        parts = path.split("/")
        if (
            len(parts) != 6
            or parts[1] != "packages"
            or any(p in ("", ".", "..") for p in parts[2:])
        ):
            await text(send, 404, f"Not Found: {scope['path']}", head=head)
            return
        sha256 = "".join(parts[2:5])
        relative = root + path.lstrip("/")
        metadata = parts[5].endswith(".metadata")
        headers: Headers = [(b"cache-control", self._metadata if metadata else self._files)]
        if metadata:
            entry = self.files.page(relative, with_serial=False)
            if entry is None:
                await text(send, 404, f"Not Found: {scope['path']}", head=head)
                return
            await self.files.send_page(scope, send, entry, headers, b"application/octet-stream")
            return
        if not await self.files.send_file(scope, send, relative, f'"{sha256}"', headers):
            await text(send, 404, f"Not Found: {scope['path']}", head=head)
