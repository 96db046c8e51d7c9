"""Search across the indexes the viewer may read: ``/_/search?q=…`` (HTML or JSON)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tilsit.web.ui.context import page

__all__ = ["routes"]


async def search(request: Request) -> Response:
    raise HTTPException(404, "Search is not built yet.")


routes: list[BaseRoute] = [page("/_/search", search, name="search")]
