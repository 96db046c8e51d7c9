"""A project's browsing page, ``/<index>/project/<name>/`` and one release's page below it."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tilsit.web.ui.context import page

__all__ = ["routes"]


async def project_page(request: Request) -> Response:
    raise HTTPException(404, f"There is no project named {request.path_params['name']!r}.")


routes: list[BaseRoute] = [
    page("/{index}/project/{name}/", project_page, name="browse_project"),
    page("/{index}/project/{name}/{version}/", project_page, name="browse_release"),
]
