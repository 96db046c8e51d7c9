"""Options shared by ``index create``, ``index set`` and ``mirror configure``.

One declaration and one conversion each, so a mirror created with filters and a
mirror configured later read their options the same way: the filter options
(:func:`filter_options`, :func:`filters_document`) and the upstream options
(:func:`upstream_options`, :func:`upstream_changes`). Nothing here opens an
instance; the commands do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from tilsit.index.upstream_options import InvalidUpstreamOption, parse_duration
from tilsit.upstream.filters import FILTER_SETTINGS, Filters, parse_size

__all__ = [
    "FILTER_PARAMS",
    "UPSTREAM_PARAMS",
    "filter_options",
    "filters_document",
    "given_filters",
    "read_password_stdin",
    "upstream_changes",
    "upstream_options",
]

F = TypeVar("F", bound=Callable[..., Any])

# The keyword arguments each decorator adds, for commands that pass them on.
FILTER_PARAMS = (*FILTER_SETTINGS, "timeout")
UPSTREAM_PARAMS = (
    "upstream_username",
    "upstream_password",
    "upstream_password_stdin",
    "ca_bundle",
    "ttl",
    "interval",
)


def filter_options(func: F) -> F:
    """The filter options of ``mirror configure`` (and of ``index create``)."""
    decorators = [
        click.option(
            "--allow",
            multiple=True,
            metavar="NAME|REQ",
            help="Only these projects, or versions (requests>=2.30); repeatable.",
        ),
        click.option(
            "--block",
            multiple=True,
            metavar="NAME|REQ",
            help="Never this project, or these versions (django<4); repeatable.",
        ),
        click.option(
            "--allow-regex", multiple=True, help="Only names matching (whole name); repeatable."
        ),
        click.option("--block-regex", multiple=True, help="Never names matching; repeatable."),
        click.option(
            "--prereleases/--no-prereleases", default=None, help="Take pre-releases or not."
        ),
        click.option(
            "--platform",
            "platforms",
            multiple=True,
            metavar="PATTERN",
            help="Only wheels for these platform tags (fnmatch: manylinux*_x86_64); pure wheels"
            " and sdists always pass; repeatable.",
        ),
        click.option(
            "--max-file-size", default=None, metavar="SIZE", help="Skip larger files (50M)."
        ),
        click.option(
            "--latest", type=click.IntRange(0), default=None, help="Only the N newest releases."
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(0.1),
            default=None,
            help="Seconds per upstream request.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def filters_document(
    current: Filters | None,
    *,
    allow: tuple[str, ...],
    block: tuple[str, ...],
    allow_regex: tuple[str, ...],
    block_regex: tuple[str, ...],
    prereleases: bool | None,
    platforms: tuple[str, ...],
    max_file_size: str | None,
    latest: int | None,
) -> Filters:
    """``current`` (None: no filters) with each given option replacing its setting.

    An empty value clears a list (``--allow ""``), 0 clears a number (``--latest 0``).
    Raises :class:`~tilsit.upstream.filters.InvalidFilter` naming what is wrong.
    """
    doc = current.to_options() if current is not None else {}
    for key, value in (
        ("allow", allow),
        ("block", block),
        ("allow_regex", allow_regex),
        ("block_regex", block_regex),
        ("platforms", platforms),
    ):
        if value:
            doc[key] = [v for v in value if v]
            if not doc[key]:
                del doc[key]
    if prereleases is not None:
        doc["prereleases"] = prereleases
    if max_file_size is not None:
        doc["max_file_size"] = parse_size(max_file_size) if max_file_size not in ("", "0") else None
    if latest is not None:
        doc["latest"] = latest or None
    return Filters.from_options({k: v for k, v in doc.items() if v is not None})


def given_filters(values: Mapping[str, Any]) -> bool:
    """Whether any filter option (not ``--timeout``) was given."""
    return any(values[k] not in (None, ()) for k in FILTER_PARAMS if k != "timeout")


def upstream_options(func: F) -> F:
    """The upstream options of ``index create`` and ``index set``."""
    decorators = [
        click.option("--upstream-username", default=None, help="User name for the upstream."),
        click.option(
            "--upstream-password",
            default=None,
            help="Password or token for the upstream (stored in the database; never printed)."
            " Prefer --upstream-password-stdin: a command line is visible to other users.",
        ),
        click.option(
            "--upstream-password-stdin",
            is_flag=True,
            help="Read the upstream password or token from the first line of stdin.",
        ),
        click.option(
            "--ca-bundle",
            default=None,
            metavar="PEM",
            help="PEM CA bundle that the upstream's TLS certificate must chain to.",
        ),
        click.option(
            "--ttl",
            default=None,
            metavar="DURATION",
            help="Proxy: how long a fetched project page is served before revalidation,"
            " and its Cache-Control max-age (600, 90s, 10m, 1h; default 600 s).",
        ),
        click.option(
            "--interval",
            default=None,
            metavar="DURATION",
            help="Mirror: time between syncs inside `tilsit serve` (3600, 30m, 1h, 1d;"
            " 0: no schedule, the default).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def read_password_stdin(values: dict[str, Any]) -> None:
    """Replace ``--upstream-password-stdin`` in ``values`` by the password it reads.

    Called before any transaction opens: a terminal's user may take their time.
    """
    if not values.pop("upstream_password_stdin", False):
        return
    if values.get("upstream_password") is not None:
        raise InvalidUpstreamOption(
            "--upstream-password and --upstream-password-stdin exclude each other"
        )
    values["upstream_password"] = sys.stdin.readline().rstrip("\r\n")


def upstream_changes(
    current_auth: object,
    *,
    upstream_username: str | None,
    upstream_password: str | None,
    ca_bundle: str | None,
    ttl: str | None,
    interval: str | None,
) -> dict[str, object | None]:
    """The option changes these command-line values ask for (None: drop the setting).

    ``current_auth`` is the index's stored credentials (None when creating): a new
    user name keeps the stored password and a new password keeps the stored user
    name (``__token__`` when there is none). Values are checked by
    :func:`~tilsit.index.upstream_options.check_upstream_options` afterwards.
    """
    changes: dict[str, object | None] = {}
    if upstream_username is not None or upstream_password is not None:
        stored = current_auth if isinstance(current_auth, Mapping) else {}
        changes["auth"] = {
            "username": upstream_username
            if upstream_username is not None
            else str(stored.get("username") or "__token__"),
            "password": upstream_password
            if upstream_password is not None
            else str(stored.get("password") or ""),
        }
    if ca_bundle is not None:
        changes["ca_bundle"] = str(Path(ca_bundle).expanduser().absolute()) if ca_bundle else None
    if ttl is not None:
        changes["ttl"] = parse_duration(ttl, "ttl")
    if interval is not None:
        changes["interval"] = parse_duration(interval, "interval") or None
    return changes
