"""Account mail: by SMTP when ``smtp_host`` is set, else into the outbox directory.

With no SMTP server configured, each message is written as an ``.eml`` file
under ``settings.outbox_dir`` (and the path logged), so a fresh server still
lets an administrator read a verification or reset link.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from tilsit.config import Settings
from tilsit.store.private import private_dir, write_private

__all__ = ["compose", "send_mail"]

log = logging.getLogger("tilsit.mail")
_TIMEOUT = 30


def compose(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2] or None)
    message.set_content(body)
    return message


def send_mail(settings: Settings, to: str, subject: str, body: str) -> Path | None:
    """Send one plain-text message (blocking: call from a thread).

    Returns the file written when there is no SMTP server, else None.
    """
    message = compose(settings, to, subject, body)
    if not settings.smtp_host:
        return _to_outbox(settings, message)
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.smtp_security == "tls":
        smtp = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=_TIMEOUT, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=_TIMEOUT)
    with smtp:
        if settings.smtp_security == "starttls":
            smtp.starttls(context=context)
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(message)
    log.info("sent %r to %s", subject, to)
    return None


def _to_outbox(settings: Settings, message: EmailMessage) -> Path:
    # The outbox holds reset and verification links: owner-only, like the database.
    outbox = private_dir(settings.outbox_dir)
    # Microseconds, so that the names sort in the order the mail was written.
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    path = outbox / f"{stamp}-{secrets.token_hex(4)}.eml"
    # Written aside (owner-only) and renamed, so a reader never sees half a message.
    write_private(path, message.as_bytes())
    log.warning("no smtp_host set: wrote mail to %s into %s", message["To"], path)
    return path
