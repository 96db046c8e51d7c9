"""Download statistics: the project page's chart and totals, a release page's per-file
totals, and the pypistats-shaped API ``/_/stats/<index>/<project>/recent|overall``.

The API answers whoever may read the project: anyone on a public index; on a private
one a logged-in user who may read it (the session cookie) or an API token that may
(HTTP Basic with the token as the password, or ``Bearer``, as the read path takes it).
Anyone else is told the project does not exist, in the words used for a missing one,
so that no answer tells a private project's existence, let alone its counts.

"with_mirrors" and "without_mirrors" (pypistats's categories) are the same numbers
here: tilsit keeps no user agent with its counts (it keeps as little as it can about
clients), so it cannot tell a mirroring client's downloads from others'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tilsit.auth.tokens import credentials_from_header
from tilsit.db.models import IndexRow, ProjectRow, ReleaseRow, UserRow
from tilsit.index import errors
from tilsit.index.access import hidden_project, may_read_project, read_scope
from tilsit.index.download_stats import (
    PERIODS,
    WINDOW_DAYS,
    Daily,
    files_totals,
    project_daily,
    release_daily,
)
from tilsit.index.manage import get_index, get_project
from tilsit.web.ui.charts import downloads_chart
from tilsit.web.ui.context import instance_of, visitor_of

__all__ = ["KINDS", "DownloadPanel", "project_panel", "release_panel", "routes"]

KINDS = ("recent", "overall")
_PERIOD_WORDS = {"last_day": "the last day", "last_week": "7 days", "last_month": "30 days"}


@dataclass(frozen=True)
class DownloadPanel:
    """What a project or release page shows of downloads (stats/_project.html,
    stats/_release.html).

    ``totals`` maps "last_day", "last_week", "last_month" to counts; ``window`` is the
    total of the whole chart (:data:`WINDOW_DAYS` days); ``rows`` are (ISO date, count)
    for the table; ``chart`` is the SVG (project pages); ``files`` maps each of a
    release's filenames to its downloads in the window (release pages); ``api`` is the
    JSON API's URL for the project.
    """

    totals: dict[str, int]
    window: int
    window_days: int
    rows: list[tuple[str, int]]
    api: str
    chart: Markup | None = None
    files: dict[str, int] = field(default_factory=dict)

    @property
    def api_overall(self) -> str:
        return self.api.removesuffix("recent") + "overall" if self.api else ""

    @property
    def labelled_totals(self) -> list[tuple[str, int]]:
        """(label, count) in the page's words: last day, 7 days, 30 days, 90 days."""
        return [
            ("Last day", self.totals["last_day"]),
            ("Last 7 days", self.totals["last_week"]),
            ("Last 30 days", self.totals["last_month"]),
            (f"Last {self.window_days} days", self.window),
        ]


def _describe(daily: Daily) -> str:
    totals = daily.totals()
    said = ", ".join(
        f"{totals[label]} in {_PERIOD_WORDS[label]}"
        if label != "last_day"
        else f"{totals[label]} in the last day"
        for label, _days in PERIODS
    )
    text = (
        f"Downloads per day from {daily.first.isoformat()} to {daily.last.isoformat()} (UTC):"
        f" {said}, {daily.total()} in {len(daily.counts)} days."
    )
    peak = max(daily.counts, default=0)
    if peak:
        day = daily.first.fromordinal(daily.first.toordinal() + daily.counts.index(peak))
        text += f" Busiest day: {day.isoformat()} with {peak}."
    return text


def _api_url(session: Session, project: ProjectRow) -> str:
    index = session.get(IndexRow, project.index_id)
    name = index.name if index is not None else ""
    return f"/_/stats/{name}/{project.normalized}/recent"


def _panel(daily: Daily, api: str, **extra: Any) -> DownloadPanel:
    return DownloadPanel(
        totals=daily.totals(),
        window=daily.total(),
        window_days=len(daily.counts),
        rows=[(day.isoformat(), count) for day, count in reversed(daily.days()) if count],
        api=api,
        **extra,
    )


def project_panel(session: Session, project: ProjectRow) -> DownloadPanel | None:
    """The project page's downloads panel: totals and the 90-day chart.

    The caller has checked that the viewer may read the project."""
    daily = project_daily(session, project)
    chart = downloads_chart(
        daily,
        f"Downloads of {project.name}, last {len(daily.counts)} days",
        _describe(daily),
        "downloads-chart",
    )
    return _panel(daily, _api_url(session, project), chart=chart)


def release_panel(session: Session, release: ReleaseRow) -> DownloadPanel | None:
    """A release page's downloads panel: the release's totals and each file's.

    The caller has checked that the viewer may read the project."""
    daily = release_daily(session, release)
    project = session.get(ProjectRow, release.project_id)
    api = _api_url(session, project) if project is not None else ""
    return _panel(daily, api, files=files_totals(session, release))


# --- the API ------------------------------------------------------------------


class _NotFound(Exception):
    pass


class _BadRequest(Exception):
    pass


def _error(status: int, reason: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": reason}, status_code=status, headers={"cache-control": "no-store", **headers}
    )


def _readable(
    session: Session,
    index_name: str,
    name: str,
    user_id: int | None,
    secret: str | None,
    default_index: str,
) -> tuple[ProjectRow, bool]:
    """The project, if the caller may read it, and whether its index is private."""
    try:
        index = get_index(session, index_name)
        project = get_project(session, index, name)
    except errors.IndexError_ as exc:
        raise _NotFound(exc.message) from exc
    if not index.private:
        return project, False
    user = session.get(UserRow, user_id) if user_id is not None else None
    if user is not None and may_read_project(session, user, project):
        return project, True
    if secret is not None:
        scope = read_scope(session, secret, index.name, default_index)
        if scope.allows(project.normalized):
            return project, True
    raise _NotFound(hidden_project(index, name).message)


def _answer(
    request: Request, kind: str, user_id: int | None, secret: str | None
) -> tuple[dict[str, Any], bool]:
    instance = instance_of(request)
    with instance.db.read() as session:
        project, private = _readable(
            session,
            request.path_params["index"],
            request.path_params["project"],
            user_id,
            secret,
            instance.settings.default_index,
        )
        if kind == "recent":
            period = request.query_params.get("period")
            days = {"day": 1, "week": 7, "month": 30}
            if period is not None and period not in days:
                raise _BadRequest(f"period must be day, week or month, not {period!r}")
            daily = project_daily(session, project, 30)
            totals = daily.totals()
            if period is not None:
                label = f"last_{period}"
                totals = {label: totals[label]}
            return {
                "data": totals,
                "package": project.normalized,
                "type": "recent_downloads",
            }, private
        mirrors = request.query_params.get("mirrors")
        if mirrors is not None and mirrors not in ("true", "false"):
            raise _BadRequest(f"mirrors must be true or false, not {mirrors!r}")
        categories = {
            None: ("with_mirrors", "without_mirrors"),
            "true": ("with_mirrors",),
            "false": ("without_mirrors",),
        }[mirrors]
        daily = project_daily(session, project, WINDOW_DAYS)
        rows = [
            {"category": category, "date": day.isoformat(), "downloads": count}
            for category in categories
            for day, count in daily.days()
            if count
        ]
        return {"data": rows, "package": project.normalized, "type": "overall_downloads"}, private


async def stats_api(request: Request) -> Response:
    """``/_/stats/<index>/<project>/recent|overall``: JSON in pypistats.org's shape."""
    kind = request.path_params["kind"]
    if kind not in KINDS:
        return _error(404, f"There are no statistics named {kind!r}; there are {', '.join(KINDS)}.")
    user = visitor_of(request).user
    secret = credentials_from_header(request.headers.get("authorization"))
    try:
        answer = await anyio.to_thread.run_sync(
            _answer, request, kind, user.id if user is not None else None, secret
        )
    except _NotFound as exc:
        return _error(404, str(exc))
    except _BadRequest as exc:
        return _error(400, str(exc))
    body, private = answer
    # A private project's counts are never kept by a shared cache.
    cache = "private, no-store" if private else "public, max-age=300"
    return JSONResponse(body, headers={"cache-control": cache})


routes: list[BaseRoute] = [
    # GET and HEAD only: web.app answers other methods with 405 before the UI, so no
    # POST route here escapes the UI's CSRF check.
    Route(
        "/_/stats/{index}/{project}/{kind}",
        stats_api,
        methods=["GET", "HEAD"],
        name="stats_api",
    ),
]
