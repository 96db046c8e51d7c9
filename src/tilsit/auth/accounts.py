"""Accounts: sign-up, email tokens, password login, second factors, password changes.

Functions here take the :class:`~tilsit.db.engine.Database` when they must
split their work around a slow step (argon2): the cheap checks and the rate
limit hit are committed in one write transaction, the hash is computed with no
transaction open, and the outcome is written in another. They are blocking:
the web layer runs them in a thread.

Errors (all :class:`AccountError`, with the reason in words and an HTTP status):

    AccountError
    ├── SignupClosed, ReadOnlyMode        switches (403 / 503)
    ├── InvalidAccountInput               bad name, address or password (400)
    ├── NameTaken, EmailTaken             (409)
    ├── BadEmailToken                     unknown, used, expired link (400)
    ├── LoginRefused                      wrong name or password, disabled (403)
    └── SecondFactorRefused               wrong, malformed or replayed code (400 / 403)
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from tilsit.auth import passwords, ratelimit, switches
from tilsit.auth.audit import record_event
from tilsit.auth.ratelimit import RateLimited
from tilsit.auth.sessions import end_user_sessions
from tilsit.auth.user_names import (
    MAX_USER_NAME,
    InvalidUserName,
    UserNameTaken,
    add_user,
    find_user_named,
    user_key,
    validate_user_name,
)
from tilsit.config import Settings
from tilsit.config.limits import Limit, parse_limits
from tilsit.db.engine import Database
from tilsit.db.models import EmailTokenRow, UserRow

__all__ = [
    "RESET",
    "VERIFY",
    "AccountError",
    "BadEmailToken",
    "EmailTaken",
    "InvalidAccountInput",
    "LoginRefused",
    "NameTaken",
    "RateLimited",
    "ReadOnlyMode",
    "SecondFactorRefused",
    "SignupClosed",
    "change_email",
    "change_password",
    "check_password_for",
    "check_writable",
    "find_user",
    "issue_email_token",
    "login_with_password",
    "normalise_email",
    "peek_email_token",
    "redeem_email_token",
    "register",
    "request_password_reset",
    "reset_password",
    "second_factor",
    "spend_email_tokens",
]

VERIFY = "verify"
RESET = "reset"
_LIFETIMES = {VERIFY: timedelta(days=2), RESET: timedelta(hours=1)}
_EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9.-]{1,252}\.[A-Za-z]{2,63}")
_MAX_NAME = MAX_USER_NAME


class AccountError(ValueError):
    status = 400


class SignupClosed(AccountError):
    status = 403


class ReadOnlyMode(AccountError):
    status = 503

    def __init__(self) -> None:
        super().__init__(
            "The server is in read-only mode: account changes are refused for now."
            " Logging in and out still works."
        )


class InvalidAccountInput(AccountError):
    status = 400


class NameTaken(AccountError):
    status = 409


class EmailTaken(AccountError):
    status = 409


class BadEmailToken(AccountError):
    status = 400


class LoginRefused(AccountError):
    status = 403


class SecondFactorRefused(AccountError):
    status = 403


def normalise_email(text: str) -> str:
    address = text.strip().lower()
    if len(address) > 254 or not _EMAIL.fullmatch(address):
        raise InvalidAccountInput(f"{text[:100]!r} is not an email address.")
    return address


def check_writable(session: Session) -> None:
    if switches.enabled(session, switches.READ_ONLY):
        raise ReadOnlyMode()


def find_user(session: Session, name: str) -> UserRow | None:
    """The account ``name`` means: exact, else under the look-alike key ("ALICE" is alice)."""
    return find_user_named(session, name)


def _token_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Expired links deleted per issue: bounded, so issuing one never waits on a backlog.
_SWEEP_BATCH = 200


def _sweep_email_tokens(session: Session, now: datetime) -> None:
    expired = (
        select(EmailTokenRow.token_hash)
        .where(EmailTokenRow.expires_at <= now)
        .order_by(EmailTokenRow.expires_at)
        .limit(_SWEEP_BATCH)
    )
    hashes = list(session.scalars(expired))
    if hashes:
        session.execute(delete(EmailTokenRow).where(EmailTokenRow.token_hash.in_(hashes)))


def spend_email_tokens(session: Session, user: UserRow, *purposes: str) -> None:
    """Mark every outstanding link of ``user`` for ``purposes`` used.

    After a password reset or change, no other reset link may still work; after
    an address change, no link sent to the old address. (:func:`peek_email_token`
    refuses both anyway, by date and by address; this makes it plain in the rows.)
    """
    session.execute(
        update(EmailTokenRow)
        .where(
            EmailTokenRow.user_id == user.id,
            EmailTokenRow.purpose.in_(purposes),
            EmailTokenRow.used_at.is_(None),
        )
        .values(used_at=datetime.now(UTC))
    )


def issue_email_token(session: Session, user: UserRow, purpose: str) -> str:
    """A single-use link secret for ``user``'s current address; only its hash is kept."""
    assert user.email, "an email token needs an address"
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    _sweep_email_tokens(session, now)
    session.add(
        EmailTokenRow(
            token_hash=_token_key(secret),
            user_id=user.id,
            purpose=purpose,
            email=user.email,
            created_at=now,
            expires_at=now + _LIFETIMES[purpose],
        )
    )
    return secret


def peek_email_token(session: Session, secret: str, purpose: str) -> tuple[EmailTokenRow, UserRow]:
    """The live token and its user, without spending it; raises :class:`BadEmailToken`.

    A link carries the authority of the moment it was issued, so it is checked
    again now: the account is still active, its address is still the one the
    link was sent to, and its password has not changed since (a reset or a
    change ends every link issued before it).
    """
    invalid = BadEmailToken(
        "This link is not valid: it was used already, has expired, or is wrong."
    )
    if not secret or len(secret) > 100:
        raise invalid
    row = session.get(EmailTokenRow, _token_key(secret))
    if row is None or row.purpose != purpose or row.used_at is not None:
        raise invalid
    if row.expires_at <= datetime.now(UTC):
        raise invalid
    user = session.get(UserRow, row.user_id)
    # A link sent to an old address is dead once the address changes.
    if user is None or user.email != row.email or not user.is_active:
        raise invalid
    if user.password_changed_at is not None and row.created_at < user.password_changed_at:
        raise invalid
    return row, user


def redeem_email_token(session: Session, secret: str, purpose: str) -> UserRow:
    row, user = peek_email_token(session, secret, purpose)
    row.used_at = datetime.now(UTC)
    return user


def _validate_name(name: str) -> None:
    try:
        validate_user_name(name)
    except InvalidUserName as exc:
        raise InvalidAccountInput(str(exc)) from exc


def _email_in_use(session: Session, email: str, except_user: int | None = None) -> bool:
    query = select(UserRow.id).where(func.lower(UserRow.email) == email)
    if except_user is not None:
        query = query.where(UserRow.id != except_user)
    return session.scalars(query).first() is not None


def _signup_checks(session: Session, name: str, email: str) -> None:
    if switches.enabled(session, switches.NO_NEW_USERS):
        raise SignupClosed("Sign-up is closed on this server; ask an administrator for an account.")
    check_writable(session)
    holder = find_user(session, name)
    if holder is not None:
        raise NameTaken(str(UserNameTaken(name, holder.name)))
    if _email_in_use(session, email):
        raise EmailTaken("That email address belongs to another account.")


def register(
    db: Database, settings: Settings, name: str, email: str, password: str, ip: str
) -> tuple[UserRow, str]:
    """Create an account with an unverified address; returns it and the verification secret."""
    _validate_name(name)
    address = normalise_email(email)
    try:
        passwords.check_new_password(password, name=name, email=address)
    except passwords.WeakPassword as exc:
        raise InvalidAccountInput(str(exc)) from exc
    with db.write() as session:
        _signup_checks(session, name, address)
        # Every sign-up hashes a password: limit them per address like logins.
        ratelimit.consume(session, f"signup:ip:{ip}", parse_limits(settings.login_ip_rate))
    hashed = passwords.hash_password(password)
    with db.write() as session:
        _signup_checks(session, name, address)
        try:
            user = add_user(session, name)
        except ValueError as exc:  # InvalidUserName, UserNameTaken (naming the holder)
            raise InvalidAccountInput(str(exc)) from exc
        now = datetime.now(UTC)
        user.email = address
        user.password_hash = hashed
        user.password_changed_at = now
        record_event(session, "account.created", actor=user, ip=ip, user=user)
        secret = issue_email_token(session, user, VERIFY)
    return user, secret


@dataclass(frozen=True)
class _Attempt:
    user_id: int | None
    stored: str | None
    active: bool
    hits: tuple[int | None, ...]


_LimitKey = tuple[str, tuple[Limit, ...]]


def _login_keys(settings: Settings, user_part: str, ip: str) -> list[_LimitKey]:
    """The per-user and per-IP limits of a password check, the user's first.

    They are counted separately, the IP's with the higher ``login_ip_rate``: users
    behind one NAT share an IP, and one of them mistyping must not lock out the
    rest. The user's key comes first, so a user already refused adds no more hits
    to the IP's count.
    """
    return [
        (f"login:user:{user_part}", parse_limits(settings.login_rate)),
        (f"login:ip:{ip}", parse_limits(settings.login_ip_rate)),
    ]


def _begin_password_check(
    db: Database,
    keys: list[_LimitKey],
    user_lookup: Callable[[Session], UserRow | None],
) -> _Attempt:
    with db.write() as session:
        # Raises RateLimited before anything is recorded or hashed; a refusal of
        # the second key rolls back the first key's hit with the transaction.
        hits = tuple(ratelimit.consume(session, key, limits) for key, limits in keys)
        user = user_lookup(session)
        return _Attempt(
            user.id if user else None,
            user.password_hash if user else None,
            bool(user and user.is_active),
            hits,
        )


def _finish_password_check(
    db: Database,
    attempt: _Attempt,
    password: str,
    ok: bool,
    *,
    ip: str,
    name: str,
    failure_action: str | None,
) -> UserRow:
    new_hash = None
    if ok and attempt.stored and passwords.needs_rehash(attempt.stored):
        new_hash = passwords.hash_password(password)
    with db.write() as session:
        user = session.get(UserRow, attempt.user_id) if attempt.user_id is not None else None
        if ok and user is not None and attempt.active:
            for hit in attempt.hits:
                ratelimit.refund(session, hit)
            if new_hash is not None and user.password_hash == attempt.stored:
                user.password_hash = new_hash
            return user
        if failure_action is not None:
            reason = "account disabled" if ok else "wrong name or password"
            record_event(
                session,
                failure_action,
                actor_name=name[:100],
                ip=ip,
                user=user,
                detail={"reason": reason},
            )
    if ok and not attempt.active:
        raise LoginRefused("This account is disabled.")
    raise LoginRefused("The user name or password is not right.")


def login_with_password(
    db: Database, settings: Settings, name: str, password: str, ip: str
) -> UserRow:
    """The user whose name and password these are; raises RateLimited or LoginRefused.

    The per-user and per-IP limits are checked (and a hit committed) before
    any hash is computed; a successful login gives the hits back, so only
    failures count. An unknown name is checked against a dummy hash, so it
    takes as long as a wrong password.
    """
    name = name.strip()
    # Keyed like the lookup: "ALICE", "a1ice" and "a.lice" all reach alice, so they
    # must all count against alice's limit, not get a fresh allowance each.
    keys = _login_keys(settings, user_key(name[:_MAX_NAME])[:100], ip)
    attempt = _begin_password_check(db, keys, lambda s: find_user(s, name))
    if len(password) > passwords.MAX_LENGTH:
        ok = False  # refused unhashed; the hit stays, as for any wrong password
    else:
        ok = passwords.verify_password(attempt.stored, password)
    return _finish_password_check(
        db, attempt, password, ok, ip=ip, name=name, failure_action="login.failed"
    )


def check_password_for(
    db: Database, settings: Settings, user_id: int, password: str, ip: str
) -> UserRow:
    """Re-authentication of a logged-in user (before a sensitive change), rate limited."""

    def lookup(session: Session) -> UserRow | None:
        return session.get(UserRow, user_id)

    with db.read() as session:
        current = session.get(UserRow, user_id)
        name = current.name if current else ""
    attempt = _begin_password_check(db, _login_keys(settings, user_key(name), ip), lookup)
    ok = len(password) <= passwords.MAX_LENGTH and passwords.verify_password(
        attempt.stored, password
    )
    try:
        return _finish_password_check(
            db, attempt, password, ok, ip=ip, name=name, failure_action="login.failed"
        )
    except LoginRefused as exc:
        raise LoginRefused("Your current password is not right.") from exc


SecondFactorCheck = Callable[[Session, UserRow], str]


def second_factor(
    db: Database,
    settings: Settings,
    user_id: int,
    check: SecondFactorCheck,
    *,
    ip: str,
    on_success: Callable[[Session, UserRow], None] | None = None,
) -> UserRow:
    """Run ``check`` (which raises ValueError on a wrong code) under the 2FA rate limit.

    ``check`` returns the name of the factor used ("totp", "recovery",
    "webauthn"). Failures are recorded and count against the limit; a success
    gives its hit back. ``on_success`` runs in the same transaction.
    """
    limits = parse_limits(settings.two_factor_rate)
    failure: ValueError | None = None
    with db.write() as session:
        hit = ratelimit.consume(session, f"2fa:user:{user_id}", limits)
        user = session.get(UserRow, user_id)
        if user is None or not user.is_active:
            raise LoginRefused("This account is disabled.")
        try:
            kind = check(session, user)
        except ValueError as exc:
            failure = exc
            record_event(
                session, "2fa.failed", actor=user, ip=ip, user=user, detail={"reason": str(exc)}
            )
        else:
            ratelimit.refund(session, hit)
            action = "recovery.used" if kind == "recovery" else "2fa.used"
            record_event(session, action, actor=user, ip=ip, user=user, detail={"method": kind})
            if on_success is not None:
                on_success(session, user)
    if failure is not None:
        raise failure
    return user


def change_password(
    db: Database, settings: Settings, user_id: int, current: str, new: str, ip: str
) -> UserRow:
    """Set a new password after checking the current one; the caller ends other sessions."""
    with db.read() as session:
        user = session.get(UserRow, user_id)
        assert user is not None
        check_writable(session)
        name, email = user.name, user.email or ""
    try:
        passwords.check_new_password(new, name=name, email=email)
    except passwords.WeakPassword as exc:
        raise InvalidAccountInput(str(exc)) from exc
    check_password_for(db, settings, user_id, current, ip)
    hashed = passwords.hash_password(new)
    with db.write() as session:
        check_writable(session)
        user = session.get(UserRow, user_id)
        assert user is not None
        user.password_hash = hashed
        user.password_changed_at = datetime.now(UTC)
        spend_email_tokens(session, user, RESET)
        record_event(session, "password.changed", actor=user, ip=ip, user=user)
    return user


def request_password_reset(
    db: Database, settings: Settings, email: str, ip: str
) -> tuple[UserRow, str] | None:
    """A reset secret for the account whose *verified* address this is, else None.

    Callers answer the same way either way, so the form does not reveal
    which addresses have accounts.
    """
    try:
        address = normalise_email(email)
    except InvalidAccountInput:
        return None
    with db.write() as session:
        ratelimit.consume(session, f"reset:ip:{ip}", parse_limits(settings.login_ip_rate))
        check_writable(session)
        user = session.scalars(
            select(UserRow).where(func.lower(UserRow.email) == address)
        ).one_or_none()
        if user is None or user.email_verified_at is None or not user.is_active:
            return None
        return user, issue_email_token(session, user, RESET)


def reset_password(db: Database, secret: str, new: str, ip: str) -> UserRow:
    """Spend a reset link to set ``new``; the caller ends the user's sessions."""
    with db.read() as session:
        check_writable(session)
        _, user = peek_email_token(session, secret, RESET)
        name, email = user.name, user.email or ""
    try:
        passwords.check_new_password(new, name=name, email=email)
    except passwords.WeakPassword as exc:
        raise InvalidAccountInput(str(exc)) from exc
    hashed = passwords.hash_password(new)
    with db.write() as session:
        check_writable(session)
        user = redeem_email_token(session, secret, RESET)
        user.password_hash = hashed
        user.password_changed_at = datetime.now(UTC)
        spend_email_tokens(session, user, RESET)
        record_event(session, "password.reset", actor=user, ip=ip, user=user)
        end_user_sessions(session, user)
    return user


def change_email(session: Session, user: UserRow, email: str, ip: str) -> str:
    """Set a new, unverified address; returns the verification secret to mail."""
    check_writable(session)
    address = normalise_email(email)
    if _email_in_use(session, address, except_user=user.id):
        raise EmailTaken("That email address belongs to another account.")
    spend_email_tokens(session, user, VERIFY, RESET)
    user.email = address
    user.email_verified_at = None
    record_event(session, "email.added", actor=user, ip=ip, user=user)
    return issue_email_token(session, user, VERIFY)
