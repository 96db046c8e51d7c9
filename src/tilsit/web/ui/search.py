"""Search across the indexes the viewer may read: ``/_/search?q=…`` (HTML or JSON).

Browsers get a results page; tools get JSON when they ask for it (``Accept``
preferring ``application/json``, or ``format=json``)::

    {"query": "reqests", "page": 1, "next_page": null,
     "results": [{"index": "main", "name": "requests", "version": "2.32.3",
                  "summary": "…", "url": "http://host/main/project/requests/"}]}

Who sees what (:mod:`tilsit.search.viewer`): a request that carries an API token
(HTTP Basic with the token as the password, as pip sends it, or Bearer) sees what the
token may read; otherwise the session's user (or an anonymous visitor) sees the
indexes it may read. A private index never appears in anyone else's results.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import anyio
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from tilsit.auth.tokens import credentials_from_header
from tilsit.db.models import IndexRow
from tilsit.search.query import MAX_QUERY, InvalidQuery, SearchPage, check_query, search
from tilsit.search.viewer import Readable, TokenRefused, for_token, for_user
from tilsit.web.ui.context import instance_of, page, render, visitor_of

__all__ = ["routes", "wants_json"]


def wants_json(request: Request) -> bool:
    """JSON for ``format=json``, or an ``Accept`` that ranks application/json above
    text/html; HTML otherwise (a browser's Accept, or none)."""
    chosen = request.query_params.get("format", "").lower()
    if chosen in ("json", "html"):
        return chosen == "json"
    quality = {"application/json": 0.0, "text/html": 0.0}
    for item in request.headers.get("accept", "").split(","):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media.lower() in quality:
            quality[media.lower()] = max(quality[media.lower()], q)
    return quality["application/json"] > quality["text/html"]


def _page_number(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    if not raw.isdigit() or len(raw) > 4:
        raise InvalidQuery("The page must be a number from 1 to 10.")
    return int(raw)


def _run(request: Request, query: str, page_number: int, index_name: str) -> SearchPage:
    instance = instance_of(request)
    secret = credentials_from_header(request.headers.get("authorization"))
    with instance.db.read() as session:
        readable: Readable
        if secret:
            readable = for_token(session, secret, instance.settings.default_index)
        else:
            readable = for_user(session, visitor_of(request).user)
        if index_name:
            index_id = session.scalar(select(IndexRow.id).where(IndexRow.name == index_name))
            readable = readable.only(index_id) if index_id is not None else Readable()
        return search(session, query, readable, page=page_number)


def _url(request: Request, index: str, normalized: str) -> str:
    return str(request.base_url).rstrip("/") + f"/{index}/project/{normalized}/"


async def search_page(request: Request) -> Response:
    as_json = wants_json(request)
    raw = request.query_params.get("q", "")
    index_name = request.query_params.get("index", "")
    if "q" not in request.query_params and not as_json:
        return await _html(request, "", index_name, None, None)  # the form alone
    try:
        page_number = _page_number(request.query_params.get("page"))
        query = check_query(raw, page_number)
        found = await anyio.to_thread.run_sync(_run, request, query, page_number, index_name)
    except InvalidQuery as exc:
        if as_json:
            return JSONResponse({"error": str(exc), "query": raw[:MAX_QUERY]}, status_code=400)
        return await _html(request, raw, index_name, None, str(exc), status=400)
    except TokenRefused as exc:
        message = f"The API token was not accepted: {exc}."
        if as_json:
            return JSONResponse(
                {"error": message},
                status_code=401,
                headers={"www-authenticate": 'Basic realm="tilsit search"'},
            )
        return await _html(request, raw, index_name, None, message, status=401)
    if as_json:
        return JSONResponse(
            {
                "query": found.query,
                "page": found.page,
                "next_page": found.page + 1 if found.more else None,
                "results": [
                    {
                        "index": hit.index,
                        "name": hit.name,
                        "version": hit.version,
                        "summary": hit.summary,
                        "match": hit.match,
                        "url": _url(request, hit.index, hit.normalized),
                    }
                    for hit in found.hits
                ],
            },
            headers={"cache-control": "no-store", "vary": "Accept, Authorization, Cookie"},
        )
    return await _html(request, raw, index_name, found, None)


async def _html(
    request: Request,
    raw: str,
    index_name: str,
    found: SearchPage | None,
    problem: str | None,
    status: int = 200,
) -> Response:
    def link(page_number: int) -> str:
        params: dict[str, Any] = {"q": raw}
        if index_name:
            params["index"] = index_name
        if page_number > 1:
            params["page"] = page_number
        return "/_/search?" + urlencode(params)

    context = {
        "query": raw[:MAX_QUERY],
        "index_name": index_name,
        "found": found,
        "problem": problem,
        "max_query": MAX_QUERY,
        "previous_url": link(found.page - 1) if found and found.page > 1 else None,
        "next_url": link(found.page + 1) if found and found.more else None,
    }
    return await render(request, "search/results.html", context, status)


routes: list[BaseRoute] = [page("/_/search", search_page, name="search")]
