"""User names: what a name may be, the key under which look-alike names collide, lookup.

``Alice``, ``ALICE``, ``a1ice`` and ``a.lice`` name one person to the human who
types a name into an invitation or a role command, so they are one name here:
each user has a ``name_key`` (:func:`user_key`), unique in the database, and a
name whose key is taken is refused, naming the account that holds it.

The key is the project names' :func:`~tilsit.spec.names.confusable_key`, with
its separator rule: ``.``, ``_`` and ``-`` are dropped. People say and recall
``j.smith``, ``j_smith`` and ``jsmith`` as the same name, so two accounts must
not hold them; and one notion of "looks alike" across tilsit is easier to
explain than two. The cost is that a few sign-ups must choose another name.

Lookup (:func:`find_user_named`) tries the exact name first, then the key: for
names made after the key existed the two agree; for the newer account of a
pair that collided before it (see migration 0004, which keeps the oldest under
the key) the exact name still reaches it.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.models import UserRow
from tilsit.spec.names import confusable_key

__all__ = [
    "MAX_USER_NAME",
    "InvalidUserName",
    "UserNameTaken",
    "add_user",
    "check_name_free",
    "find_user_named",
    "user_key",
    "validate_user_name",
]

MAX_USER_NAME = 50
_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,49}")


class InvalidUserName(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name[:60]!r} is not a valid user name: a user name is 1 to {MAX_USER_NAME}"
            " ASCII letters, digits, '.', '_' or '-', starting with a letter or digit."
        )


class UserNameTaken(ValueError):
    """The name, or one that looks like it, belongs to ``existing``."""

    def __init__(self, name: str, existing: str) -> None:
        self.existing = existing
        if name == existing:
            message = f"A user named {name!r} already exists: the name is taken."
        else:
            message = (
                f"The user name {name!r} is taken: it looks like the existing account"
                f" {existing!r} (names differing only in case, '.', '_', '-', or l/i/1"
                " and o/0 are one name here)."
            )
        super().__init__(message)


def validate_user_name(name: str) -> str:
    if not _VALID.fullmatch(name):
        raise InvalidUserName(name)
    return name


def user_key(name: str) -> str:
    """The form in which look-alike user names compare equal."""
    return confusable_key(name)


def find_user_named(session: Session, name: str) -> UserRow | None:
    """The user ``name`` means: the exact name, else the one holding its key."""
    if not name or len(name) > MAX_USER_NAME:
        return None
    exact = session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
    if exact is not None:
        return exact
    return session.scalars(select(UserRow).where(UserRow.name_key == user_key(name))).one_or_none()


def check_name_free(session: Session, name: str) -> str:
    """The key for a new account called ``name``; raises if invalid or taken."""
    validate_user_name(name)
    holder = find_user_named(session, name)
    if holder is not None:
        raise UserNameTaken(name, holder.name)
    return user_key(name)


def add_user(session: Session, name: str, *, admin: bool = False) -> UserRow:
    """A new account called ``name`` (flushed, so it has an id); raises if invalid or taken.

    Sign-up and ``tilsit user create`` both make accounts here, so both check the
    name the same way.
    """
    key = check_name_free(session, name)
    user = UserRow(name=name, name_key=key, is_admin=admin)
    session.add(user)
    session.flush()
    return user
