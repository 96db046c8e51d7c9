"""Web pages: the user's API tokens: list, create (the secret shown once), revoke."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from tilsit.auth.rights import may_read
from tilsit.auth.token_admin import (
    UnknownToken,
    issue_token,
    revoke_token,
    scope_text,
    token_by_reference,
    tokens_of,
)
from tilsit.db.models import IndexRow, ProjectRow, RoleRow, TokenRow, UserRow
from tilsit.web.ui.account_common import notify
from tilsit.web.ui.context import (
    client_ip,
    error_page,
    instance_of,
    page,
    render,
    require_user,
    validated_form,
)

# What the expiry menu offers: label, days (None: never). A short life is the
# default, as a leaked token that expires does less harm.
EXPIRY_CHOICES: dict[str, tuple[str, int | None]] = {
    "30": ("30 days", 30),
    "7": ("7 days", 7),
    "90": ("90 days", 90),
    "365": ("1 year", 365),
    "never": ("never", None),
}
DEFAULT_EXPIRY = "30"
MAX_DESCRIPTION = 200


@dataclass(frozen=True)
class TokenLine:
    row: TokenRow
    scope: str

    @property
    def state(self) -> str:
        if self.row.revoked_at is not None:
            return "revoked"
        if self.row.expires_at is not None and self.row.expires_at <= datetime.now(UTC):
            return "expired"
        return "active"


@dataclass(frozen=True)
class RoleProject:
    normalized: str
    name: str
    index: str
    role: str


def _role_projects(session: Session, user: UserRow) -> list[RoleProject]:
    """Projects the user has a role on: the only ones a token can be limited to."""
    rows = session.execute(
        select(ProjectRow.normalized, ProjectRow.name, IndexRow.name, RoleRow.role)
        .join(RoleRow, RoleRow.project_id == ProjectRow.id)
        .join(IndexRow, IndexRow.id == ProjectRow.index_id)
        .where(RoleRow.user_id == user.id, ProjectRow.deleted_at.is_(None))
        .order_by(ProjectRow.normalized, IndexRow.name)
    )
    return [RoleProject(*row) for row in rows]


def _hosted_indexes(session: Session, user: UserRow) -> list[IndexRow]:
    """The hosted indexes a token of ``user`` may be limited to: those they may read, and
    those holding a project they have a role on; never the name of a private index that is
    none of theirs (the list is shown to every account)."""
    with_roles = set(
        session.scalars(
            select(ProjectRow.index_id)
            .join(RoleRow, RoleRow.project_id == ProjectRow.id)
            .where(RoleRow.user_id == user.id)
        )
    )
    return [
        index
        for index in session.scalars(
            select(IndexRow).where(IndexRow.kind == "hosted").order_by(IndexRow.name)
        )
        if index.id in with_roles or may_read(session, user, index)
    ]


def _page_context(session: Session, user: UserRow) -> dict[str, object]:
    names = {row.id: row.name for row in session.execute(select(IndexRow.id, IndexRow.name))}
    lines = [
        TokenLine(row, scope_text(row, names.get(row.index_id) if row.index_id else None))
        for row in tokens_of(session, user)
    ]
    return {
        "tokens": lines,
        "projects": _role_projects(session, user),
        "indexes": _hosted_indexes(session, user),
        "expiry_choices": EXPIRY_CHOICES,
        "default_expiry": DEFAULT_EXPIRY,
    }


async def token_list(request: Request) -> Response:
    user = require_user(request)
    instance = instance_of(request)

    def load() -> dict[str, object]:
        with instance.db.read() as session:
            return _page_context(session, user)

    context = await anyio.to_thread.run_sync(load)
    revoked = request.query_params.get("revoked", "")
    if revoked.startswith("tilsit-") and len(revoked) <= 20:
        context["messages"] = [f"API token {revoked} is revoked: it no longer works."]
    return await render(request, "tokens/list.html", context)


class InvalidTokenForm(ValueError):
    """A field of the create-token form is not acceptable."""


async def token_create(request: Request) -> Response:
    user = require_user(request)
    instance = instance_of(request)
    form = validated_form(request)
    description = str(form.get("description") or "").strip()
    index_name = str(form.get("index") or "").strip()
    expiry = str(form.get("expiry") or DEFAULT_EXPIRY)
    wanted_projects = sorted({str(p) for p in form.getlist("projects") if str(p).strip()})
    ip = client_ip(request)

    def create() -> tuple[str, TokenRow, str | None] | list[str]:
        errors: list[str] = []
        if len(description) > MAX_DESCRIPTION:
            errors.append(f"The description is limited to {MAX_DESCRIPTION} characters.")
        if expiry not in EXPIRY_CHOICES:
            errors.append(f"Unknown expiry {expiry!r}: choose one of {', '.join(EXPIRY_CHOICES)}.")
        with instance.db.write() as session:
            owner = session.get(UserRow, user.id)
            assert owner is not None
            index = None
            if index_name:
                index = next(
                    (i for i in _hosted_indexes(session, owner) if i.name == index_name), None
                )
                if index is None:
                    errors.append(f"There is no hosted index named {index_name!r}.")
            allowed = {p.normalized for p in _role_projects(session, owner)}
            outside = [p for p in wanted_projects if p not in allowed]
            if outside:
                errors.append(
                    "A token can only be limited to projects you have a role on;"
                    f" not: {', '.join(outside)}."
                )
            if errors:
                return errors
            days = EXPIRY_CHOICES[expiry][1]
            new = issue_token(
                session,
                owner,
                index=index,
                projects=wanted_projects or None,
                expires_at=datetime.now(UTC) + timedelta(days=days) if days else None,
                description=description,
                actor=owner,
                ip=ip,
            )
            return new.secret, new.row, index.name if index else None

    outcome = await anyio.to_thread.run_sync(create)
    if isinstance(outcome, list):

        def load() -> dict[str, object]:
            with instance.db.read() as session:
                return _page_context(session, user)

        context = await anyio.to_thread.run_sync(load)
        context.update(
            errors=outcome,
            form={"description": description, "index": index_name, "expiry": expiry},
            chosen=set(wanted_projects),
        )
        return await render(request, "tokens/list.html", context, 400)
    secret, row, scope_index = outcome
    settings = instance.settings
    base = (settings.base_url or str(request.base_url)).rstrip("/")
    index = scope_index or settings.default_index
    response = await render(
        request,
        "tokens/created.html",
        {
            "secret": secret,
            "token": row,
            "scope": scope_text(row, scope_index),
            "upload_url": f"{base}/{index}/legacy/",
            "simple_url": f"{base}/{index}/simple/",
            "host": base.split("://", 1)[-1],
            "scheme": base.split("://", 1)[0],
        },
    )
    notify(
        request,
        response,
        user,
        "token.created",
        detail=f"{row.display_prefix}… ({scope_text(row, scope_index)})",
    )
    return response


async def token_revoke(request: Request) -> Response:
    user = require_user(request)
    instance = instance_of(request)
    reference = request.path_params["token_id"]
    ip = client_ip(request)

    def revoke() -> str | None:
        with instance.db.write() as session:
            owner = session.get(UserRow, user.id)
            assert owner is not None
            try:
                row = token_by_reference(session, str(reference), owner)
            except UnknownToken:
                return None
            revoke_token(session, row, actor=owner, ip=ip)
            return row.display_prefix

    prefix = await anyio.to_thread.run_sync(revoke)
    if prefix is None:
        return await error_page(request, 404, "You have no API token with that id.")
    return RedirectResponse(f"/account/tokens?revoked={prefix}", status_code=303)


routes: list[BaseRoute] = [
    page("/account/tokens", token_list, name="tokens"),
    page("/account/tokens/new", token_create, ("POST",), name="token_create"),
    page("/account/tokens/{token_id:int}/revoke", token_revoke, ("POST",), name="token_revoke"),
]
