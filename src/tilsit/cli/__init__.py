"""The ``tilsit`` command line: the root group and every command group on it.

Each group lives in the module named for it and imports only
:mod:`tilsit.cli.options` (and the domain packages); this module names them.
A command's module is imported when that command runs (or when help lists them
all): ``tilsit mirror sync`` need not import the web app, the account pages and
the audit queries, which took 0.8 s of its 1.3 s start.
"""

from __future__ import annotations

import importlib

import click

from tilsit.cli.options import OperatorGroup

__all__ = ["COMMANDS", "main"]

# Command name -> (module of tilsit.cli, attribute): the whole command tree.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "serve"),
    "init": ("serve", "init"),
    "index": ("index", "index"),
    "user": ("users", "user"),
    "token": ("tokens", "token"),
    "role": ("roles", "role"),
    "yank": ("releases", "yank"),
    "unyank": ("releases", "unyank"),
    "delete": ("releases", "delete"),
    "rebuild": ("maintenance", "rebuild"),
    "fsck": ("maintenance", "fsck"),
    "nginx-config": ("maintenance", "nginx_config"),
    "settings": ("maintenance", "settings_doc"),
    "mirror": ("mirror", "mirror"),
    "publisher": ("publishers", "publisher"),
    "keys": ("trust", "keys"),
    "tuf": ("trust", "tuf"),
    "verify": ("verify", "verify_command"),
    "audit": ("audit", "audit"),
    "switch": ("switches", "switch"),
    "why": ("why", "why"),
    "policy": ("policy", "policy"),
    "vuln": ("vulns", "vuln"),
    "review": ("reviews", "review"),
    "downloads": ("downloads", "downloads"),
    "search": ("search", "search"),
    "backup": ("backup", "backup"),
    "restore": ("backup", "restore"),
}


class _LazyGroup(OperatorGroup):
    """The root group: each command is imported from its module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"tilsit.cli.{module}"), attribute)
        assert isinstance(command, click.Command) and command.name == cmd_name, cmd_name
        return command


@click.group(cls=_LazyGroup)
@click.version_option(package_name="tilsit")
def main() -> None:
    """tilsit: a Python package index you run yourself."""
