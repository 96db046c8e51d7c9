"""``POST /<index>/legacy/``: the upload API.

Answers: 200 on success and on an identical re-upload; 400 with the reason in
the body and in the HTTP reason phrase (twine prints the phrase); 401/403 for
missing or refused credentials; 413 past the size cap, before the body is
stored; never a redirect.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime

import anyio

from tilsit.auth.audit import record_event
from tilsit.auth.email_policy import email_refusal, verified_email_required
from tilsit.auth.tokens import InvalidToken, credentials_from_header, find_token
from tilsit.config.limits import parse_limits
from tilsit.db.models import UserRow
from tilsit.index import errors
from tilsit.index.manage import get_index
from tilsit.index.owners import leaf_indexes
from tilsit.index.upload import UploadForm, UploadRules, check_form, store_upload, uploader_for
from tilsit.instance import Instance
from tilsit.web.asgi import Receive, Scope, Send, header, respond
from tilsit.web.multipart import FormTooLarge, InvalidForm, StreamingForm, UploadsBusy
from tilsit.web.reason import ReasonStatus

__all__ = ["UploadRoute"]

log = logging.getLogger("tilsit.upload")

# Form fields other than the file (description, classifiers, ...) ride on top.
_FORM_OVERHEAD = 16 * 1024 * 1024
# After refusing an oversized body, read and discard at most this much so the
# client, still sending, gets to read the 413 instead of a reset connection.
_DRAIN_LIMIT = 64 * 1024 * 1024


async def _error(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    reason = ReasonStatus(status, message.split("\n", 1)[0])
    await respond(send, reason, f"{status} {message}\n".encode(), extra)


class UploadRoute:
    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        settings = instance.settings
        self.rules = UploadRules(
            require_2fa=settings.require_2fa,
            critical_percent=settings.critical_percent,
            project_create_limits=parse_limits(settings.project_create_rate),
            default_index=settings.default_index,
        )
        self.require_email = verified_email_required(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, index_name: str) -> None:
        settings = self.instance.settings
        cap = settings.max_upload_size
        length = header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > cap + _FORM_OVERHEAD:
            await _error(
                send,
                413,
                f"Request too large: uploads are limited to {cap} bytes",
                [(b"connection", b"close")],
            )
            await _drain(receive)
            return
        secret = credentials_from_header(header(scope, b"authorization"))
        if secret is None:
            await _error(
                send,
                401,
                "Authentication required: use an API token as the password for the user __token__",
                [(b"www-authenticate", b'Basic realm="tilsit"')],
            )
            await _drain(receive)
            return
        try:
            parser = StreamingForm(header(scope, b"content-type") or "", settings.tmp_dir, cap)
        except InvalidForm as exc:
            await _error(send, 400, str(exc))
            await _drain(receive)
            return
        received = 0
        try:
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    parser.close()
                    return
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > cap + _FORM_OVERHEAD:
                    raise FormTooLarge(f"Request too large: uploads are limited to {cap} bytes")
                parser.feed(chunk)
                more = message.get("more_body", False)
            form = parser.finish()
        except UploadsBusy as exc:
            # Not this request's fault: the server's temp budget is full for now.
            await _error(send, 503, str(exc), [(b"retry-after", b"10"), (b"connection", b"close")])
            await _drain(receive)
            return
        except FormTooLarge as exc:
            await _error(send, 413, str(exc), [(b"connection", b"close")])
            await _drain(receive)
            return
        except InvalidForm as exc:
            await _error(send, 400, str(exc))
            return
        assert form.content_path is not None and form.digests is not None
        upload = UploadForm(form.fields, form.content_path, form.content_filename, form.digests)
        client = scope.get("client")
        ip = client[0] if client else ""
        try:
            status, answer, extra = await anyio.to_thread.run_sync(
                self._accept, index_name, secret, upload, ip
            )
        finally:
            form.discard()
        if status == 200:
            await respond(send, 200, f"{answer}\n".encode())
        else:
            await _error(send, status, answer, extra)

    def _accept(
        self, index_name: str, secret: str, upload: UploadForm, ip: str
    ) -> tuple[int, str, list[tuple[bytes, bytes]]]:
        """Check and store one upload (in a worker thread: it reads archives and fsyncs)."""
        # Upkeep (TUF passes, project lists) waits while an upload is in flight.
        with self.instance.renderer.writes.writing():
            return self._accept_now(index_name, secret, upload, ip)

    def _accept_now(
        self, index_name: str, secret: str, upload: UploadForm, ip: str
    ) -> tuple[int, str, list[tuple[bytes, bytes]]]:
        instance = self.instance
        rules = dataclasses.replace(self.rules, ip=ip)
        try:
            # The token is looked up twice on purpose: first so that a stranger
            # cannot make the server read archives, then under the writer lock,
            # as it may have been revoked while the archive was checked.
            with instance.db.read() as session:
                index = get_index(session, index_name)
                if index.kind != "hosted":
                    where = "uploads go to hosted indexes"
                    if index.kind == "virtual":
                        hosted = [
                            m.name for m in leaf_indexes(session, index) if m.kind == "hosted"
                        ]
                        if hosted:
                            where = f"upload to one of its hosted members: {', '.join(hosted)}"
                    return (405, f"Index {index_name!r} is a {index.kind} index: {where}", [])
                self._check_email(find_token(session, secret).user)
            checked = check_form(upload)
            with instance.db.write() as session:
                index = get_index(session, index_name)
                token = find_token(session, secret)
                uploader = uploader_for(session, token)
                # Again under the writer lock: the address may have changed meanwhile.
                self._check_email(uploader.user)
                result = store_upload(session, instance.blobs, index, uploader, checked, rules)
                token.last_used_at = datetime.now(UTC)
                record_event(
                    session,
                    "token.used",
                    actor=uploader.user,
                    actor_name=uploader.name,
                    ip=ip,
                    user=uploader.user,
                    index_id=index.id,
                    project=result.project,
                    detail={"token": token.display_prefix, "filename": result.filename},
                )
            if result.created:
                instance.renderer.catch_up()
                return 200, f"OK: stored {result.filename}", []
            return 200, f"OK: {result.filename} is already stored with the same contents", []
        except errors.TooManyRequests as exc:
            return exc.status, exc.message, [(b"retry-after", str(exc.retry_after).encode())]
        except errors.Forbidden as exc:
            self._refused(secret, ip, index_name, exc.message)
            return exc.status, exc.message, []
        except errors.IndexError_ as exc:
            return exc.status, exc.message, []
        except InvalidToken as exc:
            message = f"Invalid or non-existent authentication information: {exc}"
            self._refused(secret, ip, index_name, str(exc))
            return 403, message, []

    def _check_email(self, user: UserRow | None) -> None:
        """Refuse (403) a user without a confirmed address, before any archive is read."""
        refusal = email_refusal(user, self.require_email)
        if refusal is not None:
            raise errors.Forbidden(refusal)

    def _refused(self, secret: str, ip: str, index_name: str, reason: str) -> None:
        """Record a refused token in the audit log (of its owner, when the token is known)."""
        with self.instance.db.write() as session:
            owner = None
            try:
                token = find_token(session, secret, check_live=False)
                owner = token.user
                prefix = token.display_prefix
            except InvalidToken:
                prefix = secret[:13] if secret.startswith("tilsit-") else "(not a tilsit token)"
            record_event(
                session,
                "token.refused",
                actor=owner,
                actor_name=owner.name if owner else "anonymous",
                ip=ip,
                user=owner,
                detail={"token": prefix, "index": index_name, "reason": reason},
            )


async def _drain(receive: Receive) -> None:
    seen = 0
    with anyio.move_on_after(30):
        while seen < _DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return
