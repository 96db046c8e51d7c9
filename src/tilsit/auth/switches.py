"""Admin switches, stored in the database so every worker sees a change at once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.models import SwitchRow

__all__ = [
    "NO_NEW_PROJECTS",
    "NO_NEW_USERS",
    "NO_TRUSTED_PUBLISHING",
    "NO_UPLOADS",
    "READ_ONLY",
    "SWITCHES",
    "enabled",
    "set_switch",
    "states",
]

READ_ONLY = "read-only"
NO_NEW_USERS = "no-new-users"
NO_NEW_PROJECTS = "no-new-projects"
NO_UPLOADS = "no-uploads"
NO_TRUSTED_PUBLISHING = "no-trusted-publishing"

SWITCHES: dict[str, str] = {
    READ_ONLY: "Read-only: no uploads, no account or project changes; reads go on.",
    NO_NEW_USERS: "No new users: sign-up is closed (admins can still create accounts).",
    NO_NEW_PROJECTS: "No new projects: uploads to existing projects only.",
    NO_UPLOADS: "No uploads: every upload is refused.",
    NO_TRUSTED_PUBLISHING: (
        "No trusted publishing: CI tokens are not exchanged (for example while an issuer"
        " is suspect); API tokens still upload."
    ),
}


def states(session: Session) -> dict[str, bool]:
    rows = {row.name: row.enabled for row in session.scalars(select(SwitchRow))}
    return {name: rows.get(name, False) for name in SWITCHES}


def enabled(session: Session, name: str) -> bool:
    if name not in SWITCHES:
        raise ValueError(f"unknown switch {name!r}")
    row = session.get(SwitchRow, name)
    return bool(row and row.enabled)


def set_switch(session: Session, name: str, on: bool, actor: str) -> bool:
    """Turn a switch on or off; returns whether it changed."""
    if name not in SWITCHES:
        raise ValueError(f"unknown switch {name!r}: expected one of {', '.join(SWITCHES)}")
    row = session.get(SwitchRow, name)
    if row is None:
        row = SwitchRow(name=name, enabled=False)
        session.add(row)
    if row.enabled == on:
        return False
    row.enabled = on
    row.changed_by = actor
    row.changed_at = datetime.now(UTC)
    return True
