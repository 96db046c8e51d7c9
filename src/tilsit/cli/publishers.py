"""``tilsit publisher add|list|remove``: trusted publishers from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click
from sqlalchemy import select

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
from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.config import Settings
from tilsit.db.models import ProjectRow, PublisherRow
from tilsit.index import errors
from tilsit.index.manage import get_index, get_project, get_user

__all__ = ["publisher"]


@click.group()
def publisher() -> None:
    """Trusted publishers: CI jobs allowed to upload with an OIDC token."""


def _spec(
    settings: Settings,
    kind: str,
    repository: str,
    workflow: str,
    environment: str,
    owner_id: str,
    issuer: str,
    jwks_url: str,
    jwks_file: Path | None,
    claims: tuple[str, ...],
) -> PublisherSpec:
    if kind == "github":
        return github_spec(settings.oidc_github_issuer, repository, workflow, environment, owner_id)
    if kind == "gitlab":
        return gitlab_spec(repository, workflow, environment, issuer or GITLAB_ISSUER)
    pinned: dict[str, str] = {}
    for item in claims:
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidPublisher(f"--claim {item!r} must be NAME=VALUE")
        pinned[name.strip()] = value.strip()
    static = json.loads(jwks_file.read_text()) if jwks_file is not None else None
    return generic_spec(issuer, pinned, jwks_url, static)


@publisher.command("add")
@click.argument("project")
@click.option("--index", "index_name", default=None, help="Index (default: the default index).")
@click.option(
    "--kind", type=click.Choice(["github", "gitlab", "oidc"]), required=True, help="CI kind."
)
@click.option("--repository", default="", help="github: owner/repo; gitlab: namespace/project.")
@click.option("--workflow", default="", help="github: workflow file name; gitlab: CI file path.")
@click.option("--environment", default="", help="Deployment environment the job must use.")
@click.option("--owner-id", default="", help="github: the owner's numeric id.")
@click.option("--issuer", default="", help="gitlab (self-managed) or oidc: the issuer URL.")
@click.option("--jwks-url", default="", help="oidc: where the issuer's keys are.")
@click.option(
    "--jwks-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="oidc: a JWKS file with the issuer's keys.",
)
@click.option("--claim", "claims", multiple=True, help="oidc: NAME=VALUE the token must carry.")
@click.option(
    "--pending", is_flag=True, help="The project does not exist yet: create it on first upload."
)
@click.option("--user", "user_name", default=None, help="Who adds it (owner of a pending project).")
@instance_options
def publisher_add(
    project: str,
    index_name: str | None,
    kind: str,
    repository: str,
    workflow: str,
    environment: str,
    owner_id: str,
    issuer: str,
    jwks_url: str,
    jwks_file: Path | None,
    claims: tuple[str, ...],
    pending: bool,
    user_name: str | None,
    settings: Settings,
) -> None:
    """Allow a CI job to publish PROJECT."""
    instance = open_instance_for_command(settings)
    try:
        spec = _spec(
            settings,
            kind,
            repository,
            workflow,
            environment,
            owner_id,
            issuer,
            jwks_url,
            jwks_file,
            claims,
        )
        with instance.db.write() as session:
            index = get_index(session, index_name or settings.default_index)
            user = get_user(session, user_name) if user_name else None
            row = add_publisher(
                session,
                spec,
                index=index,
                project=None if pending else get_project(session, index, project),
                pending_name=project if pending else None,
                actor=user,
                actor_name=None if user else "cli",
                reserved_issuers=(settings.oidc_github_issuer, GITLAB_ISSUER),
            )
            click.echo(f"publisher {row.id}: {describe(row)}")
    except (InvalidPublisher, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    except errors.IndexError_ as exc:
        fail(exc)


@publisher.command("list")
@click.option("--index", "index_name", default=None, help="Index (default: the default index).")
@click.argument("project", required=False)
@instance_options
def publisher_list(project: str | None, index_name: str | None, settings: Settings) -> None:
    """List the trusted publishers (of PROJECT, or all), pending ones included."""
    instance = open_instance_for_command(settings)
    try:
        with instance.db.read() as session:
            index = get_index(session, index_name or settings.default_index)
            query = select(PublisherRow).where(
                PublisherRow.index_id == index.id, PublisherRow.removed_at.is_(None)
            )
            if project is not None:
                query = query.where(
                    PublisherRow.project_id == get_project(session, index, project).id
                )
            for row in session.scalars(query.order_by(PublisherRow.id)):
                if row.project_id is not None:
                    owner = session.get(ProjectRow, row.project_id)
                    name = owner.normalized if owner is not None else "?"
                else:
                    name = f"{row.pending_name} (pending)"
                click.echo(f"{row.id}\t{name}\t{describe(row)}")
    except errors.IndexError_ as exc:
        fail(exc)


@publisher.command("remove")
@click.argument("publisher_id", type=int)
@instance_options
def publisher_remove(publisher_id: int, settings: Settings) -> None:
    """Remove a trusted publisher; tokens it minted stop working."""
    instance = open_instance_for_command(settings)
    with instance.db.write() as session:
        row = session.get(PublisherRow, publisher_id)
        if row is None:
            raise click.UsageError(f"there is no publisher {publisher_id}")
        try:
            remove_publisher(session, row, actor_name="cli")
        except InvalidPublisher as exc:
            raise click.UsageError(str(exc)) from exc
    click.echo(f"removed publisher {publisher_id}")
