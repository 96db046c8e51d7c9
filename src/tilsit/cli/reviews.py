"""``tilsit review request|list|approve|reject``: the review queue of a curated virtual index.

The CLI acts as the server's operator: it may request, approve and reject on any
virtual index, and records its steps as actor "cli".
"""

from __future__ import annotations

import click

from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.config import Settings
from tilsit.index import errors
from tilsit.index.manage import get_index
from tilsit.index.reviews import (
    STATES,
    approve,
    list_reviews,
    parse_release,
    reject,
    request_review,
)

__all__ = ["review"]

_ACTOR = "cli"


@click.group()
def review() -> None:
    """Reviews of releases for curated virtual indexes: request, list, approve, reject."""


@review.command("request")
@click.argument("index_name", metavar="INDEX")
@click.argument("release", metavar="PROJECT==VERSION")
@instance_options
def review_request(index_name: str, release: str, settings: Settings) -> None:
    """Ask the reviewers of virtual INDEX to let a release of a non-hosted member in."""
    instance = open_instance_for_command(settings)
    try:
        project, version = parse_release(release)
        with instance.db.write() as session:
            done = request_review(
                session, get_index(session, index_name), project, version, actor=_ACTOR
            )
            shown = f"{done.review.project}=={done.review.version}"
            by = done.review.requested_by
    except errors.IndexError_ as exc:
        fail(exc)
        return
    instance.renderer.catch_up()
    if done.created:
        click.echo(f"requested a review of {shown} in {index_name!r}")
    else:
        click.echo(f"a review of {shown} in {index_name!r} is already pending (asked by {by})")


@review.command("list")
@click.argument("index_name", metavar="INDEX")
@click.option(
    "--state", type=click.Choice(STATES), default=None, help="Only reviews in this state."
)
@instance_options
def review_list(index_name: str, state: str | None, settings: Settings) -> None:
    """List the reviews of virtual INDEX: project==version, state, who asked, who decided, why."""
    instance = open_instance_for_command(settings)
    try:
        with instance.db.read() as session:
            for row in list_reviews(session, get_index(session, index_name), state):
                decided = f"{row.decided_by} {row.decided_at:%Y-%m-%d}" if row.decided_at else "-"
                click.echo(
                    f"{row.project}=={row.version}\t{row.state}\t{row.requested_by}"
                    f" {row.requested_at:%Y-%m-%d}\t{decided}\t{row.reason}"
                )
    except errors.IndexError_ as exc:
        fail(exc)


def _decision_command(approving: bool) -> click.Command:
    verb = "approve" if approving else "reject"

    @click.argument("index_name", metavar="INDEX")
    @click.argument("release", metavar="PROJECT==VERSION")
    @click.option(
        "--reason",
        default="",
        help="Why (required to reject: it is shown to whoever asks again).",
    )
    @instance_options
    def command(index_name: str, release: str, reason: str, settings: Settings) -> None:
        instance = open_instance_for_command(settings)
        decide = approve if approving else reject
        try:
            project, version = parse_release(release)
            with instance.db.write() as session:
                row = decide(
                    session,
                    get_index(session, index_name),
                    project,
                    version,
                    reason=reason,
                    actor=_ACTOR,
                )
                shown = f"{row.project}=={row.version}"
        except errors.IndexError_ as exc:
            fail(exc)
            return
        instance.renderer.catch_up()
        click.echo(f"{'approved' if approving else 'rejected'} {shown} in {index_name!r}")

    command.__doc__ = (
        "Approve a release for virtual INDEX: its owner's files, as they are, may be shown."
        if approving
        else "Reject a release for virtual INDEX, with --reason (shown to whoever asks again)."
    )
    return click.command(verb)(command)


review.add_command(_decision_command(True))
review.add_command(_decision_command(False))
