"""Web pages: the audit log, one's own (``/account/events``) and everyone's (``/admin/events``)."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tilsit.auth.audit import ACTIONS
from tilsit.auth.audit_query import EventFilter, EventView, UnknownFilterValue, find_events
from tilsit.web.ui.context import instance_of, page, render, require_admin, require_user


async def own_events(request: Request) -> Response:
    user = require_user(request)
    instance = instance_of(request)

    def load() -> list[EventView]:
        with instance.db.read() as session:
            return find_events(session, EventFilter(user=user.name))

    events = await anyio.to_thread.run_sync(load)
    return await render(request, "audit/account.html", {"events": events, "audit_actions": ACTIONS})


async def all_events(request: Request) -> Response:
    require_admin(request)
    instance = instance_of(request)
    query = request.query_params
    fields = {k: query.get(k, "").strip() for k in ("user", "project", "index", "action", "since")}
    errors: list[str] = []
    since = None
    if fields["since"]:
        try:
            since = datetime.fromisoformat(fields["since"])
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
        except ValueError:
            errors.append(f"'Since' must be a date like 2026-01-31, not {fields['since']!r}.")
    wanted = EventFilter(
        user=fields["user"] or None,
        project=fields["project"] or None,
        index=fields["index"] or None,
        action=fields["action"] or None,
        since=since,
    )

    def load() -> list[EventView]:
        with instance.db.read() as session:
            return find_events(session, wanted)

    events: list[EventView] = []
    if not errors:
        try:
            events = await anyio.to_thread.run_sync(load)
        except UnknownFilterValue as exc:
            errors.append(f"{exc}.")
    return await render(
        request,
        "admin/events.html",
        {"events": events, "filters": fields, "audit_actions": ACTIONS, "errors": errors},
        400 if errors else 200,
    )


routes: list[BaseRoute] = [
    page("/account/events", own_events, name="account_events"),
    page("/admin/events", all_events, name="admin_events"),
]
