"""Recovery codes: eight random single-use codes, shown once, stored hashed.

A code is 80 random bits written as 20 hex digits in groups of four. That is
far beyond brute force, so a plain sha256 is enough to keep the stored form
useless to a thief (no slow hash needed, unlike a chosen password). Input is
checked for shape before it is hashed: anything that is not 20 hex digits
(hyphens and spaces aside) is refused as malformed without further work.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tilsit.db.models import RecoveryCodeRow, UserRow

__all__ = [
    "CODE_COUNT",
    "InvalidRecoveryCode",
    "generate_codes",
    "normalise_recovery_code",
    "remaining_codes",
    "use_code",
]

CODE_COUNT = 8
_HEX_DIGITS = 20
_SHAPE = re.compile(r"[0-9a-f]{20}", re.ASCII)
_SEPARATORS = re.compile(r"[\s-]+")
_MAX_INPUT = 64


class InvalidRecoveryCode(ValueError):
    """Not shaped like a recovery code."""


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalise_recovery_code(text: str) -> str:
    if len(text) > _MAX_INPUT:
        raise InvalidRecoveryCode("A recovery code is 20 letters and digits (a-f, 0-9).")
    code = _SEPARATORS.sub("", text).lower()
    if not _SHAPE.fullmatch(code):
        raise InvalidRecoveryCode("A recovery code is 20 letters and digits (a-f, 0-9).")
    return code


def _display(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def generate_codes(session: Session, user: UserRow) -> list[str]:
    """Replace the user's codes with eight new ones; returns them for showing once."""
    session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user.id))
    codes = [secrets.token_hex(_HEX_DIGITS // 2) for _ in range(CODE_COUNT)]
    for code in codes:
        session.add(RecoveryCodeRow(user_id=user.id, code_hash=_hash(code)))
    session.flush()
    return [_display(code) for code in codes]


def remaining_codes(session: Session, user: UserRow) -> int:
    return len(
        session.scalars(
            select(RecoveryCodeRow.id).where(
                RecoveryCodeRow.user_id == user.id, RecoveryCodeRow.used_at.is_(None)
            )
        ).all()
    )


def use_code(session: Session, user: UserRow, text: str) -> bool:
    """Spend one unused code of ``user``; False if it is not one (or was used)."""
    code = normalise_recovery_code(text)
    # One conditional UPDATE: two requests racing with the same code cannot both win.
    result = session.execute(
        update(RecoveryCodeRow)
        .where(
            RecoveryCodeRow.user_id == user.id,
            RecoveryCodeRow.code_hash == _hash(code),
            RecoveryCodeRow.used_at.is_(None),
        )
        .values(used_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1
