"""The ``tilsit`` command line: the root group and every command group on it.

Each group lives in the module named for it and imports only
:mod:`tilsit.cli.options` (and the domain packages); this module assembles them.
"""

from __future__ import annotations

import click

from tilsit.cli import (
    audit,
    index,
    maintenance,
    mirror,
    publishers,
    releases,
    roles,
    serve,
    switches,
    tokens,
    trust,
    users,
    verify,
)
from tilsit.cli.options import OperatorGroup

__all__ = ["main"]


@click.group(cls=OperatorGroup)
@click.version_option(package_name="tilsit")
def main() -> None:
    """tilsit: a Python package index you run yourself."""


for command in (
    serve.serve,
    serve.init,
    index.index,
    users.user,
    tokens.token,
    roles.role,
    releases.yank,
    releases.unyank,
    releases.delete,
    maintenance.rebuild,
    maintenance.fsck,
    maintenance.nginx_config,
    maintenance.settings_doc,
    mirror.mirror,
    publishers.publisher,
    trust.keys,
    trust.tuf,
    verify.verify_command,
    audit.audit,
    switches.switch,
):
    main.add_command(command)
