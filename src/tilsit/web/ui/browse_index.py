"""An index's browsing page, ``/<index>/``: its projects, kind, upstream and freshness."""

from __future__ import annotations

from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from tilsit.db.models import IndexRow
from tilsit.web.ui.context import instance_of, page

__all__ = ["routes"]


async def index_slash(request: Request) -> Response:
    name = request.path_params["index"]
    with instance_of(request).db.read() as db:
        known = db.scalar(select(IndexRow.id).where(IndexRow.name == name)) is not None
    if not known:  # never a redirect that confirms or invents a name
        raise HTTPException(404, f"There is no index named {name!r}.")
    return RedirectResponse(f"/{name}/", status_code=301)


async def index_page(request: Request) -> Response:
    raise HTTPException(404, f"There is no index named {request.path_params['index']!r}.")


routes: list[BaseRoute] = [
    page("/{index}", index_slash),
    page("/{index}/", index_page, name="index_page"),
]
