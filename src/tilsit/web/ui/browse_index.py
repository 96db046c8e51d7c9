"""An index's browsing page, ``/<index>/``: its projects, kind, upstream and freshness.

Readable by whoever may read the index (:func:`tilsit.auth.rights.may_read`): anyone for
a public index. Everyone else, and a name that names no index, gets the same 404 page,
with the same words, so the page never tells a private index from a missing one (and
never sends anyone to log in for it).
"""

from __future__ import annotations

from math import ceil
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from tilsit.auth.rights import may_read
from tilsit.db.models import IndexRow, UpstreamStateRow, UserRow, VirtualMemberRow
from tilsit.index.listing import MAX_UPDATED_PAGES, PER_PAGE, Sort, counts, project_page
from tilsit.upstream.staleness import freshness, human_span
from tilsit.web.ui.context import instance_of, page, render, visitor_of

__all__ = ["readable_index", "routes", "server_root", "upstream_shown"]

SORTS: tuple[Sort, ...] = ("name", "updated")


def _unknown(name: str) -> HTTPException:
    return HTTPException(404, f"There is no index named {name!r}.")


def readable_index(session: Session, name: str, user: UserRow | None) -> IndexRow | None:
    """The index ``name`` if ``user`` may read it; None if it is missing or not theirs."""
    index = session.scalars(select(IndexRow).where(IndexRow.name == name)).one_or_none()
    if index is None or not may_read(session, user, index):
        return None
    return index


def upstream_shown(url: object) -> str | None:
    """An upstream URL as a page may show it: without any user name or password in it."""
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def server_root(request: Request) -> str:
    """This server's address for install hints: ``base_url`` when set, else as requested."""
    base = instance_of(request).settings.base_url or str(request.base_url)
    return base.rstrip("/")


async def index_slash(request: Request) -> Response:
    name = request.path_params["index"]
    user = visitor_of(request).user
    with instance_of(request).db.read() as db:
        known = readable_index(db, name, user) is not None
    if not known:  # never a redirect that confirms a name the visitor may not read
        raise _unknown(name)
    return RedirectResponse(f"/{name}/", status_code=301)


def _choices(request: Request) -> tuple[Sort, int]:
    sort = request.query_params.get("sort", "name")
    if sort not in SORTS:
        raise HTTPException(400, f"Unknown sort {sort!r}: use sort=name or sort=updated.")
    raw = request.query_params.get("page", "1")
    if not raw.isdigit() or int(raw) < 1 or len(raw) > 7:
        raise HTTPException(400, f"Invalid page {raw!r}: use a whole number from 1.")
    number = int(raw)
    if sort == "updated" and number > MAX_UPDATED_PAGES:
        raise HTTPException(
            400,
            f"Sorting by last upload goes {MAX_UPDATED_PAGES} pages deep (the"
            f" {MAX_UPDATED_PAGES * PER_PAGE:,} most recently uploaded projects): use"
            " sort=name for the rest.",
        )
    return ("updated" if sort == "updated" else "name"), number


async def index_page(request: Request) -> Response:
    name = request.path_params["index"]
    sort, number = _choices(request)
    user = visitor_of(request).user
    with instance_of(request).db.read() as db:
        index = readable_index(db, name, user)
        if index is None:
            raise _unknown(name)
        context = _index_context(db, index, user, sort, number)
    context["root"] = server_root(request)
    return await render(request, "browse/index.html", context)


def _index_context(
    db: Session, index: IndexRow, user: UserRow | None, sort: Sort, number: int
) -> dict[str, Any]:
    totals = counts(db, index)
    pages = max(1, ceil(totals.projects / PER_PAGE))
    if sort == "updated":
        pages = min(pages, MAX_UPDATED_PAGES)
    members: list[tuple[int, str | None]] = []
    if index.kind == "virtual":
        for position, member in db.execute(
            select(VirtualMemberRow.position, IndexRow)
            .join(IndexRow, IndexRow.id == VirtualMemberRow.member_index_id)
            .where(VirtualMemberRow.virtual_index_id == index.id)
            .order_by(VirtualMemberRow.position)
        ):
            # A member the visitor may not read is not named: its name is not theirs to see.
            members.append((position, member.name if may_read(db, user, member) else None))
    readable_members = {m for _, m in members if m is not None}
    lines = project_page(db, index, sort, number)
    state = db.get(UpstreamStateRow, index.id) if index.kind in ("mirror", "proxy") else None
    fresh = freshness(index, state) if index.kind == "mirror" else None
    return {
        "index": index,
        "counts": totals,
        "projects": lines,
        "readable_members": readable_members,
        "members": members,
        "sort": sort,
        "page_number": number,
        "pages": pages,
        "per_page": PER_PAGE,
        "upstream": upstream_shown(index.options.get("upstream")),
        "state": state,
        "fresh": fresh,
        "span": human_span,
    }


routes: list[BaseRoute] = [
    page("/{index}", index_slash),
    page("/{index}/", index_page, name="index_page"),
]
