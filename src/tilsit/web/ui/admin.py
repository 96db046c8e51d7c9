"""Web pages: administration: overview, switches, users, 2FA adoption (and the audit log)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from tilsit.auth import switches
from tilsit.auth.adoption import Adoption, two_factor_adoption
from tilsit.auth.audit import record_event
from tilsit.auth.policy import has_two_factor
from tilsit.auth.user_admin import LastAdministrator, change_account
from tilsit.db.models import (
    DownloadCountRow,
    FileRow,
    IndexRow,
    ProjectRow,
    RoleRow,
    SwitchRow,
    UserRow,
)
from tilsit.web.ui import events
from tilsit.web.ui.context import (
    client_ip,
    error_page,
    instance_of,
    page,
    render,
    require_admin,
    validated_form,
)


@dataclass(frozen=True)
class SwitchLine:
    name: str
    meaning: str
    on: bool
    changed_by: str
    changed_at: datetime | None


def _switch_lines(session: Session) -> list[SwitchLine]:
    rows = {row.name: row for row in session.scalars(select(SwitchRow))}
    lines = []
    for name, meaning in switches.SWITCHES.items():
        row = rows.get(name)
        lines.append(
            SwitchLine(
                name,
                meaning,
                bool(row and row.enabled),
                row.changed_by if row else "",
                row.changed_at if row else None,
            )
        )
    return lines


async def overview(request: Request) -> Response:
    require_admin(request)
    instance = instance_of(request)

    def load() -> dict[str, object]:
        with instance.db.read() as session:
            since = datetime.now(UTC).date() - timedelta(days=30)
            return {
                "counts": {
                    "users": session.scalar(select(func.count(UserRow.id))) or 0,
                    "indexes": session.scalar(select(func.count(IndexRow.id))) or 0,
                    "projects": session.scalar(
                        select(func.count(ProjectRow.id)).where(ProjectRow.deleted_at.is_(None))
                    )
                    or 0,
                    "files": session.scalar(
                        select(func.count(FileRow.id)).where(FileRow.deleted_at.is_(None))
                    )
                    or 0,
                    "downloads": session.scalar(
                        select(func.coalesce(func.sum(DownloadCountRow.count), 0)).where(
                            DownloadCountRow.day > since
                        )
                    )
                    or 0,
                },
                "switches": _switch_lines(session),
            }

    return await render(request, "admin/overview.html", await anyio.to_thread.run_sync(load))


async def switch_page(request: Request) -> Response:
    require_admin(request)
    instance = instance_of(request)

    def load() -> list[SwitchLine]:
        with instance.db.read() as session:
            return _switch_lines(session)

    lines = await anyio.to_thread.run_sync(load)
    return await render(request, "admin/switches.html", {"switches": lines})


async def switch_change(request: Request) -> Response:
    admin = require_admin(request)
    instance = instance_of(request)
    form = validated_form(request)
    name = str(form.get("name") or "")
    state = str(form.get("state") or "")
    if name not in switches.SWITCHES or state not in ("on", "off"):
        return await error_page(
            request,
            400,
            f"Unknown switch or state ({name!r}, {state!r}): expected one of"
            f" {', '.join(switches.SWITCHES)} and on or off.",
        )
    ip = client_ip(request)

    def change() -> bool:
        with instance.db.write() as session:
            changed = switches.set_switch(session, name, state == "on", actor=admin.name)
            if changed:
                record_event(
                    session,
                    "switch.changed",
                    actor=admin,
                    ip=ip,
                    detail={"switch": name, "on": state == "on"},
                )
            return changed

    changed = await anyio.to_thread.run_sync(change)
    lines = await anyio.to_thread.run_sync(lambda: _load_switches(request))
    message = f"{name} is now {state}." if changed else f"{name} was already {state}."
    return await render(request, "admin/switches.html", {"switches": lines, "messages": [message]})


def _load_switches(request: Request) -> list[SwitchLine]:
    with instance_of(request).db.read() as session:
        return _switch_lines(session)


@dataclass(frozen=True)
class UserLine:
    row: UserRow
    two_factor: bool
    roles: int


async def users_page(request: Request) -> Response:
    require_admin(request)
    instance = instance_of(request)

    def load() -> list[UserLine]:
        with instance.db.read() as session:
            counted = select(RoleRow.user_id, func.count(RoleRow.id)).group_by(RoleRow.user_id)
            roles: dict[int, int] = dict(session.execute(counted).all())
            return [
                UserLine(user, has_two_factor(session, user), roles.get(user.id, 0))
                for user in session.scalars(select(UserRow).order_by(UserRow.name))
            ]

    lines = await anyio.to_thread.run_sync(load)
    done = request.query_params.get("done", "")
    messages = [_DONE_MESSAGES[done]] if done in _DONE_MESSAGES else []
    return await render(request, "admin/users.html", {"users": lines, "messages": messages})


_DONE_MESSAGES = {
    "disable": "The account is disabled: it cannot log in, its sessions ended, its tokens stop.",
    "enable": "The account is enabled again.",
    "make-admin": "The user is now an administrator.",
    "remove-admin": "The user is no longer an administrator.",
}


async def user_change(request: Request) -> Response:
    admin = require_admin(request)
    instance = instance_of(request)
    form = validated_form(request)
    action = str(form.get("action") or "")
    user_id = int(request.path_params["user_id"])
    if action not in _DONE_MESSAGES:
        return await error_page(
            request,
            400,
            f"Unknown action {action!r}: expected one of {', '.join(_DONE_MESSAGES)}.",
        )
    if user_id == admin.id and action in ("disable", "remove-admin"):
        # An admin locking themselves out could leave the server with none.
        return await error_page(
            request, 400, "You cannot disable your own account or remove your own admin rights."
        )
    ip = client_ip(request)

    def change() -> tuple[int, str] | None:
        """None when done, else the status and reason of the refusal."""
        with instance.db.write() as session:
            user = session.get(UserRow, user_id)
            actor = session.get(UserRow, admin.id)
            if user is None:
                return 404, f"There is no user with id {user_id}."
            try:
                change_account(session, user, action, actor=actor, ip=ip)
            except LastAdministrator as exc:
                return 400, str(exc)
            return None

    refusal = await anyio.to_thread.run_sync(change)
    if refusal is not None:
        return await error_page(request, *refusal)
    return RedirectResponse(f"/admin/users?done={action}", status_code=303)


async def two_factor_page(request: Request) -> Response:
    require_admin(request)
    instance = instance_of(request)
    percent = instance.settings.critical_percent

    def load() -> Adoption:
        with instance.db.read() as session:
            return two_factor_adoption(session, percent)

    adoption = await anyio.to_thread.run_sync(load)
    return await render(request, "admin/2fa.html", {"adoption": adoption})


routes: list[BaseRoute] = [
    page("/admin/", overview, name="admin"),
    page("/admin/switches", switch_page, name="admin_switches"),
    page("/admin/switches", switch_change, ("POST",), name="admin_switch_change"),
    page("/admin/users", users_page, name="admin_users"),
    page("/admin/users/{user_id:int}", user_change, ("POST",), name="admin_user_change"),
    page("/admin/2fa", two_factor_page, name="admin_2fa"),
    *events.routes,
]
