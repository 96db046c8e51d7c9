"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, keeping what it receives.

The ``smtp_sink`` fixture (in tests/conftest.py) starts one per test.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any


class SmtpSink:
    """Collects every message the server sends (an aiosmtpd handler)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, to: str, count: int = 1, timeout: float = 20) -> list[EmailMessage]:
        """The messages sent to ``to``, once at least ``count`` have arrived."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [m for m in self.messages if to.lower() in str(m["To"]).lower()]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail to {to} within {timeout} s: {self.messages}")
                self._arrived.wait(left)

    def link(self, to: str, pattern: str = r"https?://\S+", count: int = 1) -> str:
        """The first link matching ``pattern`` in the latest message to ``to``."""
        message = self.wait_for(to, count)[-1]
        body = message.get_body(preferencelist=("plain",))
        assert body is not None, message
        match = re.search(pattern, body.get_content())
        assert match, body.get_content()
        return match[0]


@dataclass
class SmtpServer:
    host: str
    port: int
    sink: SmtpSink = field(default_factory=SmtpSink)
