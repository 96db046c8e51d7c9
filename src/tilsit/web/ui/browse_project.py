"""A project's browsing page, ``/<index>/project/<name>/`` and one release's page below it.

Readable by whoever may read the project (:func:`tilsit.auth.rights.may_read_project`):
anyone on a public index. A visitor who may not read it gets the 404 page of a
project that does not exist, in the same words, never a login redirect, so that no
answer tells a private project from a missing one.

The page's expensive part (README, metadata, release history, files) is rendered
once per state of the project (:mod:`tilsit.web.ui.page_cache`); the viewer's links,
the install commands (built on the request's address when ``base_url`` is unset)
and the clock-dependent freshness of a mirror are rendered around it per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from tilsit.auth.rights import may_manage, may_read, may_read_project
from tilsit.db.models import IndexRow, ProjectRow, ReleaseRow, UpstreamStateRow, UserRow
from tilsit.instance import Instance
from tilsit.spec.names import is_valid_name, normalize
from tilsit.web.ui import project_view as view
from tilsit.web.ui.context import instance_of, page, render, visitor_of
from tilsit.web.ui.page_cache import PageCache
from tilsit.web.ui.readme import render_readme
from tilsit.web.ui.stats import DownloadPanel, project_panel, release_panel

__all__ = ["PAGE_SIZE", "cache", "routes"]

# Releases per page of the history: a project of 2,000 versions shows its newest 50.
PAGE_SIZE = 50
# Longest page number text read (a page of a history that long does not exist).
_MAX_PAGE_DIGITS = 6

cache: PageCache[Body] = PageCache()

_fragments = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _size(value: int) -> str:
    number = float(value)
    for unit in ("bytes", "kB", "MB", "GB"):
        if number < 1000 or unit == "GB":
            return f"{int(number)} {unit}" if unit == "bytes" else f"{number:.1f} {unit}"
        number /= 1000
    return f"{value} bytes"  # pragma: no cover - the loop always returns


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_fragments.filters["size"] = _size
_fragments.filters["when"] = _when
_fragments.filters["iso"] = _iso
_fragments.filters["path"] = lambda value: quote(str(value), safe="+!")


@dataclass(frozen=True, slots=True)
class Body:
    """The kept part of a page: its title, the shown version and two HTML fragments."""

    title: str
    version: str | None
    leaf_index_id: int
    head: Markup
    main: Markup


class _NotFound(Exception):
    pass


class _Moved(Exception):
    def __init__(self, location: str) -> None:
        self.location = location


def _missing(index: str, name: str) -> _NotFound:
    # The words of tilsit.index.access.hidden_project: a project the visitor may not
    # read and one that does not exist are told apart by nothing.
    return _NotFound(f"There is no project {name!r} in index {index!r}.")


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    if not raw.isdigit() or len(raw) > _MAX_PAGE_DIGITS or int(raw) < 1:
        raise HTTPException(
            400, f"The page number must be a whole number from 1 up, not {raw[:20]!r}."
        )
    return int(raw)


def _build(
    session: Session,
    instance: Instance,
    index: IndexRow,
    project: ProjectRow,
    version: str | None,
    page_no: int,
    may_read_index: bool,
) -> Body:
    renderer = instance.renderer
    source, reason = view.source_of(
        session, renderer.snapshots, index, project, renderer.clock(), renderer.read_blob
    )
    if source is None:
        missing = _missing(index.name, project.normalized)
        # Why a virtual index shows nothing (a policy, a reservation), for its readers.
        raise _NotFound(f"{missing} ({reason})") if reason and may_read_index else missing
    base = f"/{index.name}/project/{source.normalized}/"
    item: view.ReleaseItem | None
    if version is not None:
        item = view.find_release(source, version)
        if item is None:
            raise _NotFound(
                f"There is no version {version!r} of project {source.name!r} in index"
                f" {index.name!r}."
            )
        if item.version != version:
            raise _Moved(f"{base}{quote(item.version, safe='+!')}/")
    latest = view.default_release(source)
    if version is None:
        item = latest
    count = len(source.releases)
    pages = max(1, -(-count // PAGE_SIZE))
    if version is None and page_no > pages:
        raise _NotFound(
            f"There is no page {page_no} of the release history of {source.name!r}: it has"
            f" {pages} page{'s' if pages != 1 else ''}."
        )
    release = view.release_of(session, source, item) if item is not None else None
    meta = view.metadata_of(release, renderer.read_blob) if release is not None else None
    readme = render_readme(meta.description, meta.description_content_type) if meta else None
    files = view.files_of(session, source, release) if release is not None else []
    values: dict[str, Any] = {
        "index": index,
        "source": source,
        "base": base,
        "release": release,
        "item": item,
        "latest": latest,
        "is_release": version is not None,
        "meta": meta,
        "readme": readme,
        "files": files,
        "history": source.releases[(page_no - 1) * PAGE_SIZE : page_no * PAGE_SIZE],
        "page_no": page_no,
        "pages": pages,
        "release_count": count,
        "page_size": PAGE_SIZE,
    }
    head = Markup(_fragments.get_template("browse/_head.html").render(values))  # noqa: S704 - autoescaped template
    main = Markup(_fragments.get_template("browse/_main.html").render(values))  # noqa: S704 - autoescaped template
    shown = item.version if item is not None else None
    title = source.name if version is None else f"{source.name} {shown}"
    return Body(title, shown, source.leaf.id, head, main)


@dataclass(frozen=True, slots=True)
class _Page:
    body: Body
    index: str
    kind: str
    project: str
    private: bool
    manage: bool
    downloads: DownloadPanel | None
    upstream: view.Upstream | None
    fetched_at: datetime | None
    synced_at: datetime | None


def _load(
    instance: Instance,
    user_id: int | None,
    index_name: str,
    normalized: str,
    version: str | None,
    page_no: int,
) -> _Page:
    with instance.db.read() as session:
        index = session.scalars(select(IndexRow).where(IndexRow.name == index_name)).first()
        if index is None:
            raise _missing(index_name, normalized)
        project = session.scalars(
            select(ProjectRow).where(
                ProjectRow.index_id == index.id, ProjectRow.normalized == normalized
            )
        ).first()
        me = session.get(UserRow, user_id) if user_id is not None else None
        if project is None or project.deleted_at is not None:
            raise _missing(index_name, normalized)
        if not may_read_project(session, me, project):
            raise _missing(index_name, normalized)
        key = (
            str(instance.settings.data),
            index.id,
            project.id,
            project.last_serial,
            project.upstream_serial,
            project.status,
            view.policy_version(session, index),
            version,
            page_no if version is None else 0,
        )
        body = cache.get(key)
        if body is None:
            may_read_index = may_read(session, me, index)
            body = _build(session, instance, index, project, version, page_no, may_read_index)
            cache.put(key, body)
        downloads = project_panel(session, project)
        if version is not None and body.version is not None:
            release = session.scalars(
                select(ReleaseRow)
                .join(ProjectRow, ProjectRow.id == ReleaseRow.project_id)
                .where(
                    ProjectRow.index_id == body.leaf_index_id,
                    ProjectRow.normalized == normalized,
                    ReleaseRow.version == body.version,
                )
            ).first()
            downloads = release_panel(session, release) if release is not None else None
        state = session.get(UpstreamStateRow, index.id) if index.kind == "mirror" else None
        return _Page(
            body=body,
            index=index.name,
            kind=index.kind,
            project=project.name,
            private=index.private,
            manage=me is not None and may_manage(session, me, project),
            downloads=downloads,
            upstream=view.upstream_of(index),
            fetched_at=project.fetched_at,
            synced_at=state.last_success if state is not None else None,
        )


async def project_page(request: Request) -> Response:
    index_name = request.path_params["index"]
    name = request.path_params["name"]
    version: str | None = request.path_params.get("version")
    if not is_valid_name(name):
        raise HTTPException(404, str(_missing(index_name, name)))
    normalized = normalize(name)
    if normalized != name:
        location = f"/{index_name}/project/{normalized}/"
        if version is not None:
            location += f"{quote(version, safe='+!')}/"
        if request.url.query:
            location += f"?{request.url.query}"
        return RedirectResponse(location, status_code=301)
    page_no = _page_number(request) if version is None else 1
    instance = instance_of(request)
    user = visitor_of(request).user
    try:
        found = await anyio.to_thread.run_sync(
            _load, instance, user.id if user else None, index_name, normalized, version, page_no
        )
    except _NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except _Moved as exc:
        return RedirectResponse(exc.location, status_code=301)
    base = (instance.settings.base_url or str(request.base_url)).rstrip("/")
    snippets = view.install_snippets(base, found.index, found.project, version)
    return await render(
        request,
        "browse/project.html",
        {
            "page": found,
            "body": found.body,
            "snippets": snippets,
            "is_release": version is not None,
            "downloads": found.downloads,
            "fetched_at": _when(found.fetched_at),
            "synced_at": _when(found.synced_at),
            "project_url": f"/{found.index}/project/{normalized}/",
            "simple_url": f"/{found.index}/simple/{normalized}/",
            "json_url": (
                f"/{found.index}/pypi/{normalized}/json"
                if version is None or found.body.version is None
                else f"/{found.index}/pypi/{normalized}/{quote(found.body.version, safe='+!')}/json"
            ),
            "manage_url": f"/project/{found.index}/{normalized}/" if found.manage else None,
        },
    )


routes: list[BaseRoute] = [
    page("/{index}/project/{name}/", project_page, name="browse_project"),
    page("/{index}/project/{name}/{version}/", project_page, name="browse_release"),
]
