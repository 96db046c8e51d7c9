"""Web pages: your projects and invitations, a project's roles, and the admin's indexes.

A form that changes something answers with the page itself, showing what was
done or, with the error's status, why nothing was (the change is refused as a
whole by the domain functions in :mod:`tilsit.index.roles` and
:mod:`tilsit.index.permissions`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from sqlalchemy import desc, select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tilsit.auth.audit import ACTIONS
from tilsit.db.models import AuditEventRow, IndexRow, ProjectRow, UserRow
from tilsit.index import errors
from tilsit.index.access import INDEX_PERMISSIONS, hidden_project, may_read_project
from tilsit.index.manage import get_index, get_project, get_user
from tilsit.index.permissions import (
    CREATE_POLICIES,
    grant_permission,
    list_permissions,
    revoke_permission,
    set_visibility,
)
from tilsit.index.roles import (
    ROLES,
    accept_invitation,
    change_role,
    decline_invitation,
    invite,
    may_manage,
    pending_invitations,
    project_invitations,
    project_roles,
    remove_role,
    revoke_invitation,
    user_projects,
)
from tilsit.web.ui.context import (
    Forbidden,
    client_ip,
    instance_of,
    page,
    render,
    require_admin,
    require_user,
    validated_form,
)

__all__ = ["routes"]

T = TypeVar("T")
_EVENTS_SHOWN = 100


def _field(request: Request, name: str) -> str:
    value = validated_form(request).get(name)
    return value.strip() if isinstance(value, str) else ""


async def _write(request: Request, change: Callable[[Session], T]) -> T:
    instance = instance_of(request)

    def run() -> T:
        with instance.db.write() as db:
            return change(db)

    return await anyio.to_thread.run_sync(run)


# --- /account/projects ------------------------------------------------------------


async def account_projects(
    request: Request,
    messages: list[str] | None = None,
    errors_: list[str] | None = None,
    status: int = 200,
) -> Response:
    user = require_user(request)
    instance = instance_of(request)
    with instance.db.read() as db:
        projects = user_projects(db, user)
        invitations = pending_invitations(db, user)
    return await render(
        request,
        "projects/account.html",
        {
            "projects": projects,
            "invitations": invitations,
            "messages": messages or [],
            "errors": errors_ or [],
        },
        status,
    )


def _invitation_id(request: Request) -> int:
    raw = request.path_params["invitation"]
    if not raw.isdigit() or len(raw) > 12:
        raise Forbidden("No such invitation.")
    return int(raw)


async def answer_invitation(request: Request) -> Response:
    user = require_user(request)
    invitation = _invitation_id(request)
    if request.path_params["answer"] not in ("accept", "decline"):
        raise HTTPException(404, "Answer an invitation with accept or decline.")
    accept = request.path_params["answer"] == "accept"
    ip = client_ip(request)

    def change(db: Session) -> str:
        me = db.get_one(UserRow, user.id)
        if accept:
            role = accept_invitation(db, invitation, me, ip=ip)
            project = db.get_one(ProjectRow, role.project_id)
            return f"You are now {role.role} of {project.name}."
        decline_invitation(db, invitation, me, ip=ip)
        return "Invitation declined."

    try:
        message = await _write(request, change)
    except errors.IndexError_ as exc:
        return await account_projects(request, errors_=[exc.message], status=exc.status)
    return await account_projects(request, messages=[message])


# --- /project/<index>/<name>/ ---------------------------------------------------


def _load_project(db: Session, request: Request, user: UserRow) -> ProjectRow:
    """The project the path names, if ``user`` may read it.

    In a private index a project the user may not read is "not found" in the very words
    of a missing one, so that no page tells the two apart.
    """
    index = get_index(db, request.path_params["index"])
    project = get_project(db, index, request.path_params["name"])
    if not may_read_project(db, user, project):
        raise hidden_project(index, request.path_params["name"])
    return project


async def project_page(
    request: Request,
    messages: list[str] | None = None,
    errors_: list[str] | None = None,
    status: int = 200,
) -> Response:
    user = require_user(request)
    instance = instance_of(request)
    with instance.db.read() as db:
        me = db.get_one(UserRow, user.id)
        try:
            project = _load_project(db, request, me)
        except errors.IndexError_ as exc:
            raise HTTPException(404, exc.message) from exc
        roles = project_roles(db, project)
        manager = may_manage(db, me, project)
        if not manager and all(member.id != me.id for member, _ in roles):
            raise Forbidden(f"You have no role on {project.name}.")
        context: dict[str, Any] = {
            "index": db.get_one(IndexRow, project.index_id),
            "project": project,
            "roles": roles,
            "manager": manager,
            "role_names": ROLES,
            "invitations": project_invitations(db, project) if manager else [],
            "events": list(
                db.scalars(
                    select(AuditEventRow)
                    .where(
                        AuditEventRow.index_id == project.index_id,
                        AuditEventRow.project == project.normalized,
                    )
                    .order_by(desc(AuditEventRow.at), desc(AuditEventRow.id))
                    .limit(_EVENTS_SHOWN)
                )
            ),
            "audit_actions": ACTIONS,
            "events_caption": f"Recent events of {project.name}",
            "messages": messages or [],
            "errors": errors_ or [],
        }
    return await render(request, "projects/manage.html", context, status)


async def project_action(request: Request) -> Response:
    user = require_user(request)
    action = request.path_params["action"]
    ip = client_ip(request)
    who = _field(request, "user")
    role = _field(request, "role")

    def change(db: Session) -> str:
        me = db.get_one(UserRow, user.id)
        project = _load_project(db, request, me)
        if action == "invite":
            if not who:
                raise errors.InvalidUpload("Give the user name of the person to invite.")
            invitee = get_user(db, who)
            invite(db, project, invitee, role, by=me, ip=ip)
            return f"Invited {invitee.name} to be {role} (the invitation lasts 7 days)."
        if action == "change":
            target = get_user(db, who)
            changed = change_role(db, project, target, role, by=me, ip=ip)
            return f"{target.name} is now {role}." if changed else f"{target.name} was {role}."
        if action == "remove":
            target = get_user(db, who)
            remove_role(db, project, target, by=me, ip=ip)
            return f"{target.name} no longer has a role on {project.name}."
        if action == "revoke":
            raw = _field(request, "invitation")
            if not raw.isdigit() or len(raw) > 12:
                raise errors.InvalidUpload("No such invitation.")
            revoke_invitation(db, project, int(raw), by=me, ip=ip)
            return "Invitation revoked."
        raise errors.UnknownProject(f"Unknown action {action!r}")

    try:
        message = await _write(request, change)
    except (errors.UnknownIndex, errors.UnknownProject) as exc:
        if "invitation" not in exc.message and "role on" not in exc.message:
            raise HTTPException(404, exc.message) from exc
        return await project_page(request, errors_=[exc.message], status=exc.status)
    except errors.IndexError_ as exc:
        return await project_page(request, errors_=[exc.message], status=exc.status)
    return await project_page(request, messages=[message])


# --- /admin/indexes -----------------------------------------------------------------


async def admin_indexes(
    request: Request,
    messages: list[str] | None = None,
    errors_: list[str] | None = None,
    status: int = 200,
) -> Response:
    require_admin(request)
    instance = instance_of(request)
    with instance.db.read() as db:
        indexes = [
            (index, list_permissions(db, index))
            for index in db.scalars(select(IndexRow).order_by(IndexRow.name))
        ]
    return await render(
        request,
        "projects/admin_indexes.html",
        {
            "indexes": indexes,
            "permissions": INDEX_PERMISSIONS,
            "policies": CREATE_POLICIES,
            "messages": messages or [],
            "errors": errors_ or [],
        },
        status,
    )


async def admin_index_action(request: Request) -> Response:
    admin = require_admin(request)
    action = request.path_params["action"]
    ip = client_ip(request)
    instance = instance_of(request)

    def change(db: Session) -> str:
        index = get_index(db, request.path_params["index"])
        me = db.get_one(UserRow, admin.id)
        if action == "settings":
            visibility = _field(request, "visibility")
            if visibility not in ("private", "public"):
                raise errors.InvalidUpload("Choose private or public.")
            set_visibility(
                db,
                index,
                private=visibility == "private",
                create_policy=_field(request, "create_policy") or None,
                actor=me,
                ip=ip,
            )
            state = f"Index {index.name} is {visibility}, create policy {index.create_policy}."
            if index.private and index.create_policy == "anyone":
                state += (
                    " Any user may still create projects in it, and so learn whether a name"
                    " is taken by trying it: choose the create policy 'listed' to prevent it."
                )
            return state
        if action in ("grant", "revoke"):
            target = get_user(db, _field(request, "user"))
            permission = _field(request, "permission")
            if action == "grant":
                done = grant_permission(db, index, target, permission, actor=me, ip=ip)
                return f"{target.name} {'now has' if done else 'already had'} {permission}."
            done = revoke_permission(db, index, target, permission, actor=me, ip=ip)
            return f"{target.name} {'no longer has' if done else 'did not have'} {permission}."
        raise errors.UnknownIndex(f"Unknown action {action!r}")

    try:
        message = await _write(request, change)
    except errors.IndexError_ as exc:
        return await admin_indexes(request, errors_=[exc.message], status=exc.status)
    await anyio.to_thread.run_sync(instance.renderer.catch_up)
    return await admin_indexes(request, messages=[message])


routes: list[BaseRoute] = [
    page("/account/projects", account_projects, name="account_projects"),
    page(
        "/account/invitations/{invitation}/{answer:str}",
        answer_invitation,
        ("POST",),
        name="answer_invitation",
    ),
    page("/project/{index}/{name}/", project_page, name="project_manage"),
    page("/project/{index}/{name}/{action}", project_action, ("POST",), name="project_action"),
    page("/admin/indexes", admin_indexes, name="admin_indexes"),
    page("/admin/indexes/{index}/{action}", admin_index_action, ("POST",), name="admin_index"),
]
