"""Web pages of the review queue: asking for a review, and the reviewers' queue.

- ``/account/reviews/request``: a reader of a virtual index asks for a review of a
  release; with ``?index=&project=`` it lists the releases the index's owner of the
  name offers, each with its review (a rejection with its reason) and a button.
- ``/account/reviews``: the pending requests of the indexes the user reviews (every
  virtual index for an admin), each with an approve form and a reject form (whose
  reason is required, by the browser and by :mod:`tilsit.index.reviews`).

Every form goes through :func:`~tilsit.web.ui.context.page` (CSRF, read-only mode);
the rules, and the words of a refusal, are the domain's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tilsit.db.models import IndexRow, ReviewRow, UserRow
from tilsit.index import errors
from tilsit.index.access import may_read
from tilsit.index.manage import get_index
from tilsit.index.reviews import (
    MAX_REASON,
    approve,
    offer,
    queue_for,
    readable_virtual_indexes,
    reject,
    request_review,
    review_states,
    reviewable_indexes,
)
from tilsit.spec.names import is_valid_name, normalize
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


def _field(request: Request, name: str) -> str:
    value = validated_form(request).get(name)
    return value.strip() if isinstance(value, str) else ""


async def _write(request: Request, change: Callable[[Session], T]) -> T:
    instance = instance_of(request)

    def run() -> T:
        with instance.db.write() as db:
            return change(db)

    return await anyio.to_thread.run_sync(run)


async def _rendered(request: Request) -> None:
    """The release's pages follow the decision before the answer (as a yank's do)."""
    await anyio.to_thread.run_sync(instance_of(request).renderer.catch_up)


# --- /account/reviews -------------------------------------------------------------


async def queue(
    request: Request,
    messages: list[str] | None = None,
    errors_: list[str] | None = None,
    status: int = 200,
) -> Response:
    user = require_user(request)
    with instance_of(request).db.read() as db:
        me = db.get_one(UserRow, user.id)
        context: dict[str, Any] = {
            "pending": queue_for(db, me),
            "reviewing": [index.name for index in reviewable_indexes(db, me)],
            "max_reason": MAX_REASON,
            "messages": messages or [],
            "errors": errors_ or [],
        }
    return await render(request, "reviews/queue.html", context, status)


def _review_id(request: Request) -> int:
    raw = request.path_params["review"]
    if not raw.isdigit() or len(raw) > 12:
        raise HTTPException(404, "There is no such review request.")
    return int(raw)


async def decide(request: Request) -> Response:
    user = require_user(request)
    review_id = _review_id(request)
    verdict = request.path_params["verdict"]
    if verdict not in ("approve", "reject"):
        raise HTTPException(404, "Answer a review request with approve or reject.")
    reason = _field(request, "reason")
    ip = client_ip(request)

    def change(db: Session) -> str:
        me = db.get_one(UserRow, user.id)
        row = db.get(ReviewRow, review_id)
        index = db.get(IndexRow, row.index_id) if row is not None else None
        if row is None or index is None or not may_read(db, me, index):
            raise errors.UnknownRelease("There is no such review request.")
        if verdict == "approve":
            done = approve(db, index, row.project, row.version, reason=reason, by=me, ip=ip)
            return f"Approved {done.project} {done.version} for {index.name}."
        done = reject(db, index, row.project, row.version, reason=reason, by=me, ip=ip)
        return f"Rejected {done.project} {done.version} for {index.name}: {done.reason}"

    try:
        message = await _write(request, change)
    except errors.IndexError_ as exc:
        return await queue(request, errors_=[exc.message], status=exc.status)
    await _rendered(request)
    return await queue(request, messages=[message])


# --- /account/reviews/request -------------------------------------------------------


async def request_page(
    request: Request,
    messages: list[str] | None = None,
    errors_: list[str] | None = None,
    status: int = 200,
    chosen: dict[str, str] | None = None,
) -> Response:
    user = require_user(request)
    chosen = chosen or {
        "index": request.query_params.get("index", "").strip(),
        "project": request.query_params.get("project", "").strip(),
        "version": request.query_params.get("version", "").strip(),
    }
    listing: dict[str, Any] | None = None
    with instance_of(request).db.read() as db:
        me = db.get_one(UserRow, user.id)
        indexes = readable_virtual_indexes(db, me)
        readable = {index.name: index for index in indexes}
        index = readable.get(chosen["index"])
        if index is not None and is_valid_name(chosen["project"]):
            name = normalize(chosen["project"])
            try:
                found = offer(db, index, name)
            except errors.IndexError_ as exc:
                errors_ = [*(errors_ or []), exc.message]
            else:
                states = review_states(db, index, name)
                listing = {
                    "index": index.name,
                    "member": found.member,
                    "project": found.project,
                    "releases": [
                        (release, states.get(release.version_key)) for release in found.releases(db)
                    ],
                }
        elif chosen["index"] and index is None:
            errors_ = [*(errors_ or []), f"There is no virtual index named {chosen['index']!r}"]
    context: dict[str, Any] = {
        "indexes": [index.name for index in indexes],
        "chosen": chosen,
        "listing": listing,
        "messages": messages or [],
        "errors": errors_ or [],
    }
    return await render(request, "reviews/request.html", context, status)


async def ask(request: Request) -> Response:
    user = require_user(request)
    chosen = {name: _field(request, name) for name in ("index", "project", "version")}
    ip = client_ip(request)

    def change(db: Session) -> str:
        me = db.get_one(UserRow, user.id)
        index = get_index(db, chosen["index"])
        done = request_review(db, index, chosen["project"], chosen["version"], by=me, ip=ip)
        shown = f"{done.review.project} {done.review.version}"
        if not done.created:
            return (
                f"A review of {shown} in {index.name} is already pending"
                f" (asked by {done.review.requested_by})."
            )
        return f"Review of {shown} in {index.name} requested: a reviewer will decide."

    try:
        message = await _write(request, change)
    except errors.IndexError_ as exc:
        return await request_page(request, errors_=[exc.message], status=exc.status, chosen=chosen)
    await _rendered(request)
    return await request_page(request, messages=[message], chosen=chosen)


async def request_or_ask(request: Request) -> Response:
    if request.method == "POST":
        return await ask(request)
    return await request_page(request)


routes: list[BaseRoute] = [
    page("/account/reviews", queue, name="reviews"),
    page("/account/reviews/request", request_or_ask, ("GET", "POST"), name="review_request"),
    page("/account/reviews/{review}/{verdict:str}", decide, ("POST",), name="review_decide"),
]
