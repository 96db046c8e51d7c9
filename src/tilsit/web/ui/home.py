"""The front page: the indexes the visitor may read, their recent uploads, a search box.

Only indexes :func:`tilsit.auth.rights.may_read` allows are named, counted or drawn
from for recent uploads: a private index is invisible to everyone else, as on its
own page.
"""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tilsit.auth.rights import may_read
from tilsit.db.models import IndexRow, UpstreamStateRow
from tilsit.index.listing import counts, recent_uploads
from tilsit.upstream.staleness import freshness
from tilsit.web.ui.browse_index import server_root
from tilsit.web.ui.context import instance_of, page, render, visitor_of

RECENT_UPLOADS = 20


async def front(request: Request) -> Response:
    instance = instance_of(request)
    user = visitor_of(request).user
    with instance.db.read() as db:
        indexes = [
            i for i in db.scalars(select(IndexRow).order_by(IndexRow.name)) if may_read(db, user, i)
        ]
        mirrors = [i.id for i in indexes if i.kind == "mirror"]
        states = {
            s.index_id: s
            for s in db.scalars(
                select(UpstreamStateRow).where(UpstreamStateRow.index_id.in_(mirrors))
            )
        }
        rows = [
            {
                "index": i,
                "counts": counts(db, i),
                "fresh": freshness(i, states.get(i.id)) if i.kind == "mirror" else None,
            }
            for i in indexes
        ]
        recent = recent_uploads(db, indexes, RECENT_UPLOADS)
    default = next((i for i in indexes if i.name == instance.settings.default_index), None)
    return await render(
        request,
        "home.html",
        {"rows": rows, "recent": recent, "default": default, "root": server_root(request)},
    )


routes: list[BaseRoute] = [page("/", front, name="home")]
