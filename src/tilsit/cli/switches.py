"""``tilsit switch list|on|off``: the administrator's switches."""

from __future__ import annotations

import click

from tilsit.auth import switches
from tilsit.auth.audit import record_event
from tilsit.cli.options import instance_options, open_instance_for_command
from tilsit.config import Settings

__all__ = ["switch"]


@click.group()
def switch() -> None:
    """Admin switches: read-only, no-new-users, no-new-projects, no-uploads."""


@switch.command("list")
@instance_options
def switch_list(settings: Settings) -> None:
    """Show each switch, on or off, and what it does."""
    instance = open_instance_for_command(settings)
    with instance.db.read() as session:
        states = switches.states(session)
    for name, meaning in switches.SWITCHES.items():
        click.echo(f"{name}\t{'on' if states[name] else 'off'}\t{meaning}")


def _set(name: str, on: bool, settings: Settings) -> None:
    if name not in switches.SWITCHES:
        raise click.BadParameter(
            f"unknown switch {name!r}: expected one of {', '.join(switches.SWITCHES)}",
            param_hint="NAME",
        )
    instance = open_instance_for_command(settings)
    with instance.db.write() as session:
        changed = switches.set_switch(session, name, on, actor="cli")
        if changed:
            record_event(
                session, "switch.changed", actor_name="cli", detail={"switch": name, "on": on}
            )
    state = "on" if on else "off"
    click.echo(f"{name} is {state}" if changed else f"{name} was already {state}")


@switch.command("on")
@click.argument("name")
@instance_options
def switch_on(name: str, settings: Settings) -> None:
    """Turn a switch on."""
    _set(name, True, settings)


@switch.command("off")
@click.argument("name")
@instance_options
def switch_off(name: str, settings: Settings) -> None:
    """Turn a switch off."""
    _set(name, False, settings)
