"""Read routes of virtual indexes: the tree's pages, with two things only tilsit can add.

A virtual index's pages are rendered into the tree like any index's, so reads stay
static (nginx serves them too). tilsit adds:

- **names only a proxy member could supply**: a project no member holds yet is
  asked of the proxy members, in order, on its first request (as a proxy index
  does), never of a proxy that comes after the member owning the name, and never
  for a reserved name or a look-alike of a hosted one: an internal name must not
  even be asked about upstream. The fill is journaled, the virtual index's page
  rendered from it, and then served from the tree;
- **a 404 that says why**: a name that is reserved, hidden as a look-alike, or
  removed from its hosted owner answers 404 with that reason in words, so that a
  resolver's error leads somewhere.

Which indexes are virtual, with their proxy members, is kept in memory and read
again at most every few seconds, as the proxy routes do.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy import select

from tilsit.db.models import IndexRow
from tilsit.index.owners import leaf_indexes, resolve_owner
from tilsit.instance import Instance
from tilsit.render.virtual import VirtualView, explain, why_document
from tilsit.spec.names import is_valid_name, normalize
from tilsit.store.tree import PAGE_JSON
from tilsit.upstream.proxy.index import ProxyIndex
from tilsit.web.asgi import Scope, Send, respond, text
from tilsit.web.proxy import ProxyRoutes
from tilsit.web.read import ReadRoutes

__all__ = ["VirtualRoutes"]

_LEARN_EVERY = 5.0


@dataclass(frozen=True)
class VirtualIndex:
    name: str
    proxies: tuple[str, ...]  # its proxy members (at any depth), in order


class VirtualRoutes:
    def __init__(self, instance: Instance, read: ReadRoutes, proxy: ProxyRoutes) -> None:
        self.instance = instance
        self.read = read
        self.proxy = proxy
        # Learned now, so a hosted index's reads make no query of their own.
        self._known: dict[str, VirtualIndex | None] = self._learn()
        self._learned = time.monotonic()

    def _learn(self) -> dict[str, VirtualIndex | None]:
        """Every index by name: its :class:`VirtualIndex` if it is virtual, else None."""
        with self.instance.db.read() as session:
            return {
                row.name: VirtualIndex(
                    row.name,
                    tuple(leaf.name for leaf in leaf_indexes(session, row) if leaf.kind == "proxy"),
                )
                if row.kind == "virtual"
                else None
                for row in session.scalars(select(IndexRow))
            }

    async def index(self, name: str) -> VirtualIndex | None:
        """The virtual index named ``name``; None for any other kind (from memory)."""
        if time.monotonic() - self._learned >= _LEARN_EVERY or (
            name not in self._known and time.monotonic() - self._learned >= 1.0
        ):
            self._known = await anyio.to_thread.run_sync(self._learn)
            self._learned = time.monotonic()
        return self._known.get(name)

    # -- pages ----------------------------------------------------------------------

    def _proxies_to_ask(self, virtual: VirtualIndex, name: str) -> list[str]:
        """The proxy members that may supply ``name`` ahead of what holds it now.

        None when the name is settled without them: reserved, a look-alike, routed
        to another member, or held by a member that comes before every proxy.
        """
        with self.instance.db.read() as session:
            row = session.scalars(select(IndexRow).where(IndexRow.name == virtual.name)).first()
            if row is None:
                return []
            owner = resolve_owner(session, row, name)
            if owner.rule in ("reserved", "confusable"):
                return []
            if owner.rule == "route":
                assert owner.member is not None
                return [owner.member.name] if owner.member.name in virtual.proxies else []
            leaves = [leaf.name for leaf in leaf_indexes(session, row)]
        if owner.member is None:
            return list(virtual.proxies)
        # The owner's own leaves end the search (a proxy owner is asked, to revalidate).
        if owner.member.kind == "virtual":
            with self.instance.db.read() as session:
                inner = session.scalars(
                    select(IndexRow).where(IndexRow.id == owner.member.id)
                ).one()
                stop = {leaf.name for leaf in leaf_indexes(session, inner)}
        else:
            stop = {owner.member.name}
        asked: list[str] = []
        for leaf in leaves:
            if leaf in virtual.proxies:
                asked.append(leaf)
            if leaf in stop:
                break
        return asked

    async def _fill(self, virtual: VirtualIndex, name: str) -> None:
        """Bring ``name`` in through the proxy members that may supply it, rendered."""
        if not virtual.proxies or not is_valid_name(name) or normalize(name) != name:
            return
        asked = await anyio.to_thread.run_sync(self._proxies_to_ask, virtual, name)
        filled: list[ProxyIndex] = []
        for member in asked:
            proxy = await self.proxy.index(member)
            if proxy is None:
                continue
            await self.proxy.proxy.page(proxy, name)  # errors: the tree's page, or a 404
            filled.append(proxy)
        for proxy in filled:
            await self.proxy.proxy.until_rendered(proxy, name)

    async def simple(
        self, scope: Scope, send: Send, virtual: VirtualIndex, base: str, rest: str
    ) -> None:
        name = rest.strip("/")
        if name and "/" not in name and rest.endswith("/"):
            await self._fill(virtual, name)
            if not self._in_tree(virtual, name):
                await self._not_found(scope, send, virtual, name)
                return
        await self.read.simple(scope, send, virtual.name, base, rest)

    async def legacy_json(
        self, scope: Scope, send: Send, virtual: VirtualIndex, prefix: str, rest: str
    ) -> None:
        parts = rest.rstrip("/").split("/")
        if len(parts) in (2, 3) and parts[-1] == "json":
            await self._fill(virtual, parts[0])
            if normalize(parts[0]) == parts[0] and not self._in_tree(virtual, parts[0]):
                await self._not_found(scope, send, virtual, parts[0])
                return
        await self.read.legacy_json(scope, send, virtual.name, prefix, rest)

    def _in_tree(self, virtual: VirtualIndex, name: str) -> bool:
        if not is_valid_name(name) or normalize(name) != name:
            return True  # not a project name: the tree's routes answer (a redirect, a 404)
        return self.read.files.page(f"{virtual.name}/simple/{name}/{PAGE_JSON}") is not None

    async def _not_found(self, scope: Scope, send: Send, virtual: VirtualIndex, name: str) -> None:
        reason = await anyio.to_thread.run_sync(self._reason, virtual.name, name)
        body = (
            f"Not Found: {reason}"
            if reason
            else f"Not Found: no project {name!r} in index {virtual.name!r}"
        )
        await text(send, 404, body, head=scope["method"] == "HEAD")

    def _reason(self, virtual: str, name: str) -> str | None:
        """Why there is no page: ownership (reserved, a look-alike), or the policy that
        hid every file. Asked on a 404 only: reads stay static."""
        view = self.explain(virtual, name)
        return None if view is None else view.reason

    def explain(self, virtual: str, name: str) -> VirtualView | None:
        renderer = self.instance.renderer
        with self.instance.db.read() as session:
            row = session.scalars(select(IndexRow).where(IndexRow.name == virtual)).first()
            if row is None or row.kind != "virtual":
                return None
            return explain(
                session, renderer.snapshots, row, name, renderer.clock(), renderer.read_blob
            )

    async def why(self, scope: Scope, send: Send, virtual: str, name: str) -> None:
        """``/_/why/<index>/<project>``: every file a member offers and the rule that
        admitted or hid it (the caller checked the reader may read the index)."""
        head = scope["method"] == "HEAD"
        if not is_valid_name(name):
            await text(send, 404, f"Not Found: {name!r} is not a project name", head=head)
            return
        view = await anyio.to_thread.run_sync(self.explain, virtual, normalize(name))
        if view is None:
            await text(send, 404, f"Not Found: {virtual!r} is not a virtual index", head=head)
            return
        body = json.dumps(why_document(view, virtual, normalize(name)), indent=1).encode()
        await respond(
            send,
            200,
            body,
            [(b"cache-control", b"no-store")],
            content_type=b"application/json",
            head=head,
        )

    # -- files ----------------------------------------------------------------------

    async def package_file(
        self, scope: Scope, send: Send, virtual: VirtualIndex, path: str
    ) -> None:
        """``/<virtual>/packages/…``: the tree's link, or a proxy member's file fetched now
        (and linked under the virtual index by the render its fill journals)."""
        if (
            virtual.proxies
            and not self.read.files.exists(f"{virtual.name}{path}")
            and await self.proxy.serves_file(path)
        ):
            await self.proxy.package_file(scope, send, path)
            return
        await self.read.package_file(scope, send, path, f"{virtual.name}/")
