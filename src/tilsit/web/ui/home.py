"""The front page: what this server is and how to use it."""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tilsit.db.models import IndexRow
from tilsit.web.ui.context import instance_of, page, render


async def front(request: Request) -> Response:
    instance = instance_of(request)
    with instance.db.read() as db:
        indexes = list(db.scalars(select(IndexRow).order_by(IndexRow.name)))
    return await render(request, "home.html", {"indexes": indexes})


routes: list[BaseRoute] = [page("/", front, name="home")]
