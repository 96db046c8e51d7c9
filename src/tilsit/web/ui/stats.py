"""Download statistics: the project page's chart and totals, and the pypistats-shaped API
``/_/stats/<index>/<project>/recent|overall``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tilsit.db.models import ProjectRow, ReleaseRow
from tilsit.web.ui.context import page

__all__ = ["DownloadPanel", "project_panel", "release_panel", "routes"]


@dataclass(frozen=True)
class DownloadPanel:
    """What the project page shows of a project's downloads (stats/_project.html)."""


def project_panel(session: Session, project: ProjectRow) -> DownloadPanel | None:
    """The project page's downloads panel, or None when there is nothing to show."""
    return None


def release_panel(session: Session, release: ReleaseRow) -> DownloadPanel | None:
    """A release page's downloads panel (its files' totals), or None when there is nothing."""
    return None


async def stats_api(request: Request) -> Response:
    raise HTTPException(404, "Download statistics are not built yet.")


routes: list[BaseRoute] = [
    page("/_/stats/{index}/{project}/{kind}", stats_api, name="stats_api"),
]
