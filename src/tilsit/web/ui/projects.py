"""Web pages: your projects and invitations, a project's roles and releases, the admin's indexes.

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
from sqlalchemy.orm import Session, selectinload
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tilsit.auth.audit import ACTIONS
from tilsit.db.models import AuditEventRow, FileRow, IndexRow, ProjectRow, ReleaseRow, UserRow
from tilsit.index import errors
from tilsit.index.access import (
    INDEX_PERMISSIONS,
    hidden_project,
    may_read_project,
    project_role,
)
from tilsit.index.manage import (
    delete_file,
    delete_release,
    get_index,
    get_project,
    get_user,
    set_yanked,
)
from tilsit.index.permissions import (
    CREATE_POLICIES,
    grant_permission,
    list_permissions,
    revoke_permission,
    set_visibility,
)
from tilsit.index.roles import (
    MAINTAINER,
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
# A yank reason is shown to installers next to the version: a sentence, not a document.
_MAX_YANK_REASON = 1000


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
        may_yank, may_delete = _release_rights(db, me, project)
        context: dict[str, Any] = {
            "releases": _live_releases(db, project),
            "may_yank": may_yank,
            "may_delete": may_delete,
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


def _live_releases(db: Session, project: ProjectRow) -> list[tuple[ReleaseRow, list[FileRow]]]:
    """The project's releases that are not deleted, newest first, each with its live files."""
    releases = db.scalars(
        select(ReleaseRow)
        .where(ReleaseRow.project_id == project.id, ReleaseRow.deleted_at.is_(None))
        .order_by(desc(ReleaseRow.created_at), desc(ReleaseRow.id))
        # One query for every release's files, not one per release.
        .options(selectinload(ReleaseRow.files))
    )
    return [
        (release, sorted((f for f in release.files if f.deleted_at is None), key=_filename))
        for release in releases
    ]


def _filename(row: FileRow) -> str:
    return row.filename


def _release_rights(db: Session, user: UserRow, project: ProjectRow) -> tuple[bool, bool]:
    """(may yank and unyank, may delete) the project's releases.

    Owners (and admins) may do both. A Maintainer may yank, which only marks a release
    for installers and is undone by unyanking, but not delete, which is for good: a
    deleted filename can never be uploaded again. This is what `tilsit yank` and
    `tilsit delete` do, for the project's people rather than the operator.
    """
    if may_manage(db, user, project):
        return True, True
    return user.is_active and project_role(db, user, project) == MAINTAINER, False


def _release_change(db: Session, request: Request, me: UserRow, project: ProjectRow) -> str:
    """Yank, unyank or delete a release, or delete a file, as the page's forms ask."""
    action = request.path_params["action"]
    ip = client_ip(request)
    index = db.get_one(IndexRow, project.index_id)
    may_yank, may_delete = _release_rights(db, me, project)
    if action in ("yank", "unyank"):
        if not may_yank:
            raise errors.Forbidden(f"Only an Owner or Maintainer of {project.name!r} may {action}")
        reason = _field(request, "reason") if action == "yank" else ""
        if len(reason) > _MAX_YANK_REASON:
            raise errors.InvalidUpload(
                f"The reason is {len(reason)} characters long: at most {_MAX_YANK_REASON}."
            )
        version = _field(request, "version")
        set_yanked(
            db,
            index,
            project.normalized,
            version,
            yanked=action == "yank",
            reason=reason,
            actor=me.name,
            by=me,
            ip=ip,
        )
        return (
            f"{project.name} {version} is {'yanked' if action == 'yank' else 'no longer yanked'}."
        )
    if not may_delete:
        raise errors.Forbidden(
            f"Only an Owner of {project.name!r} may delete its releases and files"
            " (a Maintainer may yank a release instead)"
        )
    confirm = _field(request, "confirm")
    if action == "delete-release":
        version = _field(request, "version")
        if not version or confirm != version:
            raise errors.InvalidUpload(
                f"To delete release {version!r}, type its version exactly; nothing was deleted."
            )
        delete_release(db, index, project.normalized, version, actor=me.name, by=me, ip=ip)
        return f"Release {project.name} {version} and its files are deleted."
    filename = _field(request, "filename")
    if not filename or confirm != filename:
        raise errors.InvalidUpload(
            f"To delete the file {filename!r}, type its name exactly; nothing was deleted."
        )
    # delete_file finds the file in the whole index: it must be this project's.
    row = db.scalars(
        select(FileRow).where(FileRow.index_id == index.id, FileRow.filename == filename)
    ).one_or_none()
    if row is None or row.release.project_id != project.id:
        raise errors.UnknownFile(f"{project.name} has no file {filename!r}")
    delete_file(db, index, filename, actor=me.name, by=me, ip=ip)
    return f"The file {filename} is deleted; its name can never be uploaded again."


_RELEASE_ACTIONS = ("yank", "unyank", "delete-release", "delete-file")


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
        if action in _RELEASE_ACTIONS:
            return _release_change(db, request, me, project)
        raise errors.UnknownProject(f"Unknown action {action!r}")

    try:
        message = await _write(request, change)
    except (errors.UnknownIndex, errors.UnknownProject) as exc:
        if "invitation" not in exc.message and "role on" not in exc.message:
            raise HTTPException(404, exc.message) from exc
        return await project_page(request, errors_=[exc.message], status=exc.status)
    except errors.IndexError_ as exc:
        return await project_page(request, errors_=[exc.message], status=exc.status)
    if action in _RELEASE_ACTIONS:
        # The simple pages show yanks and deletions: render them before answering.
        await anyio.to_thread.run_sync(instance_of(request).renderer.catch_up)
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
