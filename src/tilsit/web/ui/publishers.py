"""Web pages: a project's trusted publishers, and pending publishers of new projects.

- ``/project/<index>/<name>/publishers``: the project's Owners list, add and
  remove publishers of each kind (GitHub, GitLab, a generic OIDC issuer).
- ``/account/publishing``: a user adds a *pending* publisher for a project that
  does not exist yet; its first trusted upload creates the project, owned by
  that user.

Forms answer with the page itself: what was done, or why nothing was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tilsit.auth.oidc.publishers import (
    GITLAB_ISSUER,
    InvalidPublisher,
    PublisherSpec,
    add_publisher,
    describe,
    generic_spec,
    github_spec,
    gitlab_spec,
    remove_publisher,
)
from tilsit.auth.ratelimit import RateLimited, consume
from tilsit.config import Settings
from tilsit.config.limits import parse_limits
from tilsit.db.models import IndexRow, ProjectRow, PublisherRow, UserRow
from tilsit.index import errors
from tilsit.index.access import hidden_project, may_create, may_read_project, pending_reservation
from tilsit.index.manage import get_index, get_project
from tilsit.index.roles import may_manage
from tilsit.web.ui.context import (
    client_ip,
    instance_of,
    page,
    render,
    require_user,
    validated_form,
)

__all__ = ["routes"]

T = TypeVar("T")


@dataclass(frozen=True)
class Listed:
    id: int
    name: str
    kind: str
    identity: str


def _field(request: Request, name: str) -> str:
    value = validated_form(request).get(name)
    return value.strip() if isinstance(value, str) else ""


def spec_from_form(request: Request, settings: Settings) -> PublisherSpec:
    """The publisher the form describes, or :class:`InvalidPublisher` saying what is wrong."""
    kind = _field(request, "kind")
    if kind == "github":
        return github_spec(
            settings.oidc_github_issuer,
            _field(request, "repository"),
            _field(request, "workflow"),
            _field(request, "environment"),
            _field(request, "owner_id"),
        )
    if kind == "gitlab":
        return gitlab_spec(
            _field(request, "project_path"),
            _field(request, "workflow_filepath"),
            _field(request, "environment"),
            _field(request, "issuer") or GITLAB_ISSUER,
        )
    if kind == "oidc":
        claims: dict[str, str] = {}
        for line in _field(request, "claims").splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep:
                raise InvalidPublisher(f"Claim line {line.strip()!r} must be NAME=VALUE")
            claims[name.strip()] = value.strip()
        static: dict[str, Any] | None = None
        keys_text = _field(request, "static_keys")
        if keys_text:
            try:
                static = json.loads(keys_text)
            except ValueError as exc:
                raise InvalidPublisher("Static keys must be a JWKS in JSON") from exc
        return generic_spec(_field(request, "issuer"), claims, _field(request, "jwks_url"), static)
    raise InvalidPublisher(f"Unknown publisher kind {kind!r}")


def _limit_adding(db: Session, user: UserRow, ip: str, settings: Settings, pending: bool) -> None:
    """Refuse a publisher beyond the user's allowance (administrators have none).

    Publishers are cheap to add and a pending one reserves a project name, so a
    stolen session or a script must not be able to squat names or flood issuers.
    """
    if user.is_admin:
        return
    limits = parse_limits(settings.publisher_add_rate)
    consume(db, f"publisher-add:user:{user.id}", limits)
    consume(db, f"publisher-add:ip:{ip}", limits)
    if pending:
        held = db.scalar(
            select(func.count(PublisherRow.id)).where(
                PublisherRow.created_by == user.id,
                PublisherRow.project_id.is_(None),
                PublisherRow.removed_at.is_(None),
            )
        )
        if (held or 0) >= settings.pending_publishers_max:
            raise InvalidPublisher(
                f"You have {held} pending publishers, the most allowed at once"
                f" ({settings.pending_publishers_max}): remove one, or publish the first"
                " release of one of their projects"
            )


async def _run(request: Request, work: Callable[[Session], T], *, write: bool = False) -> T:
    instance = instance_of(request)

    def run() -> T:
        with instance.db.write() if write else instance.db.read() as db:
            return work(db)

    return await anyio.to_thread.run_sync(run)


def _listed(db: Session, rows: list[PublisherRow]) -> list[Listed]:
    found = []
    for row in rows:
        if row.project_id is not None:
            project = db.get(ProjectRow, row.project_id)
            name = project.normalized if project is not None else "?"
        else:
            name = row.pending_name or "?"
        kind = {"github": "GitHub", "gitlab": "GitLab"}.get(row.kind, "OIDC")
        found.append(Listed(row.id, name, kind, describe(row)))
    return found


# --- /project/<index>/<name>/publishers --------------------------------------------


def _managed_project(db: Session, user: UserRow, index_name: str, name: str) -> ProjectRow:
    try:
        index = get_index(db, index_name)
        project = get_project(db, index, name)
    except errors.IndexError_ as exc:
        raise HTTPException(404, exc.message) from exc
    if not may_manage(db, user, project):
        if not may_read_project(db, user, project):
            # In a private index: the answer for a project that does not exist.
            raise HTTPException(404, hidden_project(index, name).message)
        raise HTTPException(403, f"Only an Owner of {project.name!r} may manage its publishers.")
    return project


async def project_publishers(request: Request) -> Response:
    user = require_user(request)
    index_name, name = request.path_params["index"], request.path_params["name"]
    messages: list[str] = []
    errors_: list[str] = []
    status = 200
    retry_after: int | None = None
    if request.method == "POST":
        settings = instance_of(request).settings
        action = _field(request, "action")
        try:
            spec = spec_from_form(request, settings) if action == "add" else None
        except InvalidPublisher as exc:
            spec, errors_, status = None, [str(exc)], 400

        def change(db: Session) -> str:
            project = _managed_project(db, user, index_name, name)
            index = db.get(IndexRow, project.index_id)
            assert index is not None
            if action == "add":
                assert spec is not None
                _limit_adding(db, user, client_ip(request), settings, pending=False)
                row = add_publisher(
                    db,
                    spec,
                    index=index,
                    project=project,
                    actor=user,
                    ip=client_ip(request),
                    reserved_issuers=(settings.oidc_github_issuer, GITLAB_ISSUER),
                )
                return f"Added publisher: {describe(row)}."
            if action == "remove":
                gone = db.get(PublisherRow, _publisher_id(request))
                if gone is None or gone.project_id != project.id or gone.removed_at is not None:
                    raise InvalidPublisher("There is no such publisher on this project")
                remove_publisher(db, gone, actor=user, ip=client_ip(request))
                return f"Removed publisher: {describe(gone)}."
            raise InvalidPublisher(f"Unknown action {action!r}")

        if not errors_:
            try:
                messages.append(await _run(request, change, write=True))
            except InvalidPublisher as exc:
                errors_, status = [str(exc)], 400
            except RateLimited as exc:
                errors_, status, retry_after = [str(exc)], 429, exc.retry_after

    def load(db: Session) -> tuple[ProjectRow, list[Listed]]:
        project = _managed_project(db, user, index_name, name)
        rows = db.scalars(
            select(PublisherRow)
            .where(PublisherRow.project_id == project.id, PublisherRow.removed_at.is_(None))
            .order_by(PublisherRow.id)
        ).all()
        return project, _listed(db, list(rows))

    project, publishers = await _run(request, load)
    response = await render(
        request,
        "publishers/project.html",
        {
            "project": project,
            "index_name": index_name,
            "publishers": publishers,
            "action": f"/project/{index_name}/{project.normalized}/publishers",
            "messages": messages,
            "errors": errors_,
            "pending": False,
        },
        status,
    )
    if retry_after is not None:
        response.headers["retry-after"] = str(retry_after)
    return response


def _publisher_id(request: Request) -> int:
    text = _field(request, "publisher")
    if not text.isdigit():
        raise InvalidPublisher("Which publisher? The form named none")
    return int(text)


# --- /account/publishing -------------------------------------------------------------


async def account_publishing(request: Request) -> Response:
    user = require_user(request)
    messages: list[str] = []
    errors_: list[str] = []
    status = 200
    retry_after: int | None = None
    settings = instance_of(request).settings
    if request.method == "POST":
        action = _field(request, "action")

        def change(db: Session) -> str:
            if action == "add":
                spec = spec_from_form(request, settings)
                try:
                    index = get_index(db, _field(request, "index") or settings.default_index)
                except errors.IndexError_ as exc:
                    raise InvalidPublisher(exc.message) from exc
                if not may_create(db, user, index):
                    raise InvalidPublisher(f"You may not create projects in index {index.name!r}")
                held = pending_reservation(db, index, _field(request, "project_name"))
                if held is not None and held.created_by != user.id:
                    # The upload path would refuse this publisher's first upload anyway.
                    raise InvalidPublisher(
                        f"The name {held.pending_name!r} is already reserved in index"
                        f" {index.name!r} by another user's pending publisher"
                    )
                _limit_adding(db, user, client_ip(request), settings, pending=True)
                row = add_publisher(
                    db,
                    spec,
                    index=index,
                    pending_name=_field(request, "project_name"),
                    actor=user,
                    ip=client_ip(request),
                    reserved_issuers=(settings.oidc_github_issuer, GITLAB_ISSUER),
                )
                return f"Added a pending publisher for {row.pending_name}: {describe(row)}."
            if action == "remove":
                gone = db.get(PublisherRow, _publisher_id(request))
                if (
                    gone is None
                    or gone.created_by != user.id
                    or gone.project_id is not None
                    or gone.removed_at is not None
                ):
                    raise InvalidPublisher("There is no such pending publisher of yours")
                remove_publisher(db, gone, actor=user, ip=client_ip(request))
                return f"Removed the pending publisher for {gone.pending_name}."
            raise InvalidPublisher(f"Unknown action {action!r}")

        try:
            messages.append(await _run(request, change, write=True))
        except InvalidPublisher as exc:
            errors_, status = [str(exc)], 400
        except RateLimited as exc:
            errors_, status, retry_after = [str(exc)], 429, exc.retry_after

    def load(db: Session) -> tuple[list[Listed], list[str]]:
        rows = db.scalars(
            select(PublisherRow)
            .where(
                PublisherRow.created_by == user.id,
                PublisherRow.project_id.is_(None),
                PublisherRow.removed_at.is_(None),
            )
            .order_by(PublisherRow.id)
        ).all()
        indexes = db.scalars(
            select(IndexRow.name).where(IndexRow.kind == "hosted").order_by(IndexRow.name)
        ).all()
        return _listed(db, list(rows)), list(indexes)

    publishers, indexes = await _run(request, load)
    response = await render(
        request,
        "publishers/account.html",
        {
            "publishers": publishers,
            "indexes": indexes,
            "default_index": settings.default_index,
            "action": "/account/publishing",
            "messages": messages,
            "errors": errors_,
            "pending": True,
        },
        status,
    )
    if retry_after is not None:
        response.headers["retry-after"] = str(retry_after)
    return response


routes: list[BaseRoute] = [
    page(
        "/project/{index}/{name}/publishers",
        project_publishers,
        ("GET", "POST"),
        name="project_publishers",
    ),
    page("/account/publishing", account_publishing, ("GET", "POST"), name="account_publishing"),
]
