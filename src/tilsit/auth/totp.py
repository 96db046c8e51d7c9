"""TOTP second factor (RFC 6238: 30-second steps, 6 digits, SHA-1).

A code is normalised once, by :func:`normalise_code`, and that one form is
both checked and recorded: whitespace is dropped and what is left must be six
ASCII digits. Anything else (full-width digits, letters, seven digits) is not a
code at all, so no spelling of a used code can pass as a different one.

A code is accepted for the current step or one step either side (clock skew).
The accepted step is stored on the user; a code for that step or any earlier
one is refused afterwards, so a code works once, and an older code captured
later (by a phishing page, over a shoulder) can never be played back.
"""

from __future__ import annotations

import hmac
import re
import time

import pyotp

from tilsit.db.models import UserRow

__all__ = [
    "DIGITS",
    "STEP",
    "InvalidCode",
    "ReplayedCode",
    "WrongCode",
    "accept_code",
    "matching_step",
    "new_secret",
    "normalise_code",
    "provisioning_uri",
]

STEP = 30
DIGITS = 6
# Only the code's own length of digits, ASCII only: str.isdigit() would also
# take full-width and other Unicode digits.
_CODE = re.compile(r"[0-9]{6}", re.ASCII)
_WHITESPACE = re.compile(r"\s+")
# Nobody types a 6-digit code in more than this; longer input is refused unread.
_MAX_INPUT = 64


class InvalidCode(ValueError):
    """Not a six-digit code."""


class WrongCode(ValueError):
    """A well-formed code that matches no allowed time step."""


class ReplayedCode(WrongCode):
    """A code for a time step that was already used (or is older than one that was)."""


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def normalise_code(text: str) -> str:
    if len(text) > _MAX_INPUT:
        raise InvalidCode("A code is six digits.")
    code = _WHITESPACE.sub("", text)
    if not _CODE.fullmatch(code):
        raise InvalidCode("A code is six digits (0-9), as your authenticator app shows it.")
    return code


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (within ±1 of now) whose code is ``code``, or None."""
    current = int((time.time() if now is None else now) // STEP)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
    found = None
    # Every candidate is compared (no early exit), in constant time.
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.at(step * STEP), code):
            found = step
    return found


def accept_code(user: UserRow, text: str, now: float | None = None) -> int:
    """Check ``text`` against the user's secret; record and return the step it used.

    Call inside a write transaction (the step must be stored with the check).
    """
    if not user.totp_secret:
        raise WrongCode("No authenticator app is set up for this account.")
    code = normalise_code(text)
    step = matching_step(user.totp_secret, code, now)
    if step is None:
        raise WrongCode("That code is not right (or has expired).")
    if user.totp_last_step is not None and step <= user.totp_last_step:
        raise ReplayedCode("That code was already used; wait for the next one.")
    user.totp_last_step = step
    return step
