"""Password hashing and password rules.

Hashes are argon2id PHC strings (argon2-cffi's defaults, RFC 9106's
low-memory profile). A stored hash made with older parameters is replaced at
the next successful login (:func:`needs_rehash`).

Every real argon2 verification is counted (:func:`verification_count`), so a
test can show that a rate-limited login never reached the hash. Passwords over
:data:`MAX_LENGTH` characters are refused before any hashing: a megabyte
"password" must not cost the server a megabyte of argon2 input per attempt.
"""

from __future__ import annotations

import secrets
import threading
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "MAX_LENGTH",
    "MIN_LENGTH",
    "PasswordTooLong",
    "WeakPassword",
    "check_new_password",
    "hash_password",
    "needs_rehash",
    "verification_count",
    "verify_password",
]

# NIST SP 800-63B: at least 8 characters, and allow long passphrases.
MIN_LENGTH = 8
MAX_LENGTH = 1024
COMMON_PASSWORDS = Path(__file__).parent / "data" / "common-passwords.txt"

_hasher = PasswordHasher()
_lock = threading.Lock()
_verifications = 0


class WeakPassword(ValueError):
    """A new password that tilsit refuses; the message says why."""


class PasswordTooLong(WeakPassword):
    """Longer than MAX_LENGTH characters: refused before it is hashed."""

    def __init__(self) -> None:
        super().__init__(f"A password may be at most {MAX_LENGTH} characters long.")


def verification_count() -> int:
    """How many argon2 verifications this process has run (for tests and metrics)."""
    return _verifications


@cache
def _common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS.read_text().splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def check_new_password(password: str, *, name: str = "", email: str = "") -> None:
    """Raise :class:`WeakPassword` (with the reason) unless ``password`` may be set."""
    if len(password) > MAX_LENGTH:
        raise PasswordTooLong()
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"A password must be at least {MIN_LENGTH} characters long.")
    folded = password.casefold()
    if len(set(folded)) <= 2:
        raise WeakPassword("The password repeats one or two characters; choose a real one.")
    if folded in _common_passwords():
        raise WeakPassword(
            "This password is on a list of common, breached passwords; choose another."
        )
    for word, what in ((name, "user name"), (email, "email address")):
        word = word.casefold()
        if word and len(word) >= 3 and word in folded:
            raise WeakPassword(f"The password must not contain your {what}.")
    local = email.casefold().partition("@")[0]
    if len(local) >= 3 and local in folded:
        raise WeakPassword("The password must not contain your email address.")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (slow on purpose: call it from a thread)."""
    if len(password) > MAX_LENGTH:
        raise PasswordTooLong()
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    # Verified when there is no real hash (unknown user, no password set), so a
    # wrong name costs the same time as a wrong password and names cannot be told
    # apart by timing.
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; always runs one argon2 verification."""
    global _verifications
    if len(password) > MAX_LENGTH:
        raise PasswordTooLong()
    target = stored or _dummy_hash()
    with _lock:
        _verifications += 1
    try:
        ok = _hasher.verify(target, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and stored is not None


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with other parameters than today's."""
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True
