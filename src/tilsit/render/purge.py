"""Purge a CDN after each render: the surrogate keys the journal rows changed.

:class:`PurgeFollower` is one of the renderer's followers
(:attr:`tilsit.render.follow.Renderer.followers`). A render only wakes it: the
requests run on its own thread, each bounded by ``purge_timeout`` and its answer
read to at most :data:`MAX_ANSWER` bytes, so a slow or failing CDN never holds an
upload or a render.

What was purged is a serial watermark, ``<data>/purge.serial``, written atomically
after the CDN accepted every request for the rows up to it. A failure is logged
and the watermark stays, so the same rows are purged again after the next render
(or at the next wake): a purge is never lost, at worst sent twice, which a purge
allows. Rows past the tree's ``.serial`` wait: a page is purged only once the new
one is in the tree. A first start sets the watermark at the newest serial (the
cache in front of a new server holds nothing older).

Keys (:mod:`tilsit.spec.surrogate`): a row about a project purges the index's
project list, the project and the index's TUF metadata; a removal or a row about
the whole index (a policy, a change of visibility) purges the index; a removal
(a project, a release, a file, an index) purges the index and the shared ``/packages/``
(``index:packages``), where a removed file may also be.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import func, select

from tilsit.db.engine import Database
from tilsit.db.live import with_deleted
from tilsit.db.models import IndexRow, JournalRow
from tilsit.spec.surrogate import SHARED, index_key, list_key, project_key, tuf_key
from tilsit.store.tree import Tree

__all__ = ["MAX_ANSWER", "PurgeFollower", "PurgeTarget", "keys_of_row", "paths_of_key"]

log = logging.getLogger("tilsit.purge")

# Journal rows read per pass, and keys named by one Surrogate-Key request (Fastly
# takes at most 256 per request; a header of 128 keys of 128 bytes stays under 17 KiB).
BATCH_ROWS = 2000
KEYS_PER_REQUEST = 128
# Bytes of a purge answer read: the status is what counts.
MAX_ANSWER = 64 * 1024
STYLES = ("surrogate-key", "url")


class PurgeFailed(Exception):
    """The CDN did not accept a purge request (refused, timed out, unreachable)."""


@dataclass(frozen=True)
class PurgeTarget:
    url: str
    method: str = "POST"
    style: str = "surrogate-key"
    token: str = ""
    timeout: float = 5.0
    default_index: str = "main"


def keys_of_row(index: str, project: str | None, action: str) -> list[str]:
    if "remove" in action or "delete" in action:
        # A removed file may be under the shared /packages/ too, which names no index.
        return [index_key(index), index_key(SHARED)]
    if project is None:
        return [index_key(index)]
    return [list_key(index), project_key(index, project), tuf_key(index)]


def paths_of_key(key: str, default_index: str) -> list[str]:
    """The URL paths a key names, for a cache purged by URL; a key that names a whole
    index or its TUF metadata gives a prefix ending in ``*`` (ngx_cache_purge's partial
    keys)."""
    kind, _, rest = key.partition(":")
    index, _, project = rest.partition("/")
    prefixes = [f"/{index}"] + ([""] if index == default_index else [])
    if kind == "project":
        return [
            f"{p}{area}"
            for p in prefixes
            for area in (f"/simple/{project}/", f"/pypi/{project}/json", f"/project/{project}/")
        ]
    if kind == "list":
        return [f"{p}/simple/" for p in prefixes]
    if kind == "tuf":
        return [f"/{index}/tuf/*"]
    return [f"/{index}/*"] + (["/simple/*", "/pypi/*", "/project/*"] if prefixes[-1] == "" else [])


class PurgeFollower:
    def __init__(self, db: Database, tree: Tree, mark_path: Path, target: PurgeTarget) -> None:
        if target.style not in STYLES:
            raise ValueError(f"purge_style must be one of {', '.join(STYLES)}")
        self.db = db
        self.tree = tree
        self.mark_path = mark_path
        self.target = target
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._registered = False
        self.failures = 0  # for tests and /_/health
        if not mark_path.exists():
            with db.read() as session:
                newest = int(session.scalar(select(func.max(JournalRow.serial))) or 0)
            self._save(newest)

    # The follower: called after every render, returns at once.
    def __call__(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tilsit-purge", daemon=True)
                self._thread.start()
                if not self._registered:
                    atexit.register(self.close)
                    self._registered = True
        self._wake.set()

    def close(self, timeout: float | None = None) -> None:
        """Let the pass in progress (or one last pass, if woken) finish, then stop: a
        command that rendered (``tilsit yank``) purges before it exits, registered with
        :mod:`atexit` on first use. Bounded: what is not purged stays past the mark."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(self.target.timeout * 4 if timeout is None else timeout)

    def mark(self) -> int:
        try:
            return int(self.mark_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _save(self, serial: int) -> None:
        tmp = self.mark_path.with_name(self.mark_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, f"{serial}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.mark_path)

    def _run(self) -> None:
        while True:
            # Woken by a render; a stop (process exit) runs the pass it finds pending.
            while not self._wake.wait(0.1):
                if self._stop.is_set():
                    return
            self._wake.clear()
            try:
                while self.purge_once():
                    pass
            except Exception:  # the watermark stays: the next wake retries
                self.failures += 1
                log.exception("CDN purge failed; retried after the next render")
            if self._stop.is_set():
                return

    def purge_once(self) -> bool:
        """Purge one batch of rendered rows past the watermark; whether one was purged."""
        done = self.mark()
        rendered = self.tree.serial()
        if rendered <= done:
            return False
        with self.db.read() as session:
            rows = session.execute(
                select(JournalRow.serial, IndexRow.name, JournalRow.project, JournalRow.action)
                .join(IndexRow, JournalRow.index_id == IndexRow.id)
                .where(JournalRow.serial > done, JournalRow.serial <= rendered)
                .order_by(JournalRow.serial)
                .limit(BATCH_ROWS)
                .execution_options(**with_deleted())
            ).all()
        if not rows:
            self._save(rendered)
            return False
        keys: dict[str, None] = {}
        for _serial, index, project, action in rows:
            keys.update(dict.fromkeys(keys_of_row(index, project, action)))
        self._send(list(keys))
        self._save(int(rows[-1][0]))
        return True

    def _send(self, keys: list[str]) -> None:
        t = self.target
        headers = {"user-agent": "tilsit-purge"}
        if t.token:
            headers["fastly-key"] = t.token
            headers["authorization"] = f"Bearer {t.token}"
        with httpx.Client(timeout=t.timeout, follow_redirects=False) as http:
            if t.style == "surrogate-key":
                for start in range(0, len(keys), KEYS_PER_REQUEST):
                    chunk = keys[start : start + KEYS_PER_REQUEST]
                    self._request(http, t.url, {**headers, "surrogate-key": " ".join(chunk)})
            else:
                base = t.url.rstrip("/")
                for path in _unique(p for k in keys for p in paths_of_key(k, t.default_index)):
                    self._request(http, base + path, headers)

    def _request(self, http: httpx.Client, url: str, headers: dict[str, str]) -> None:
        try:
            with http.stream(self.target.method, url, headers=headers) as answer:
                read = 0
                for chunk in answer.iter_bytes():
                    read += len(chunk)
                    if read >= MAX_ANSWER:
                        break
                status = answer.status_code
        except httpx.HTTPError as exc:
            raise PurgeFailed(f"{self.target.method} {url}: {exc}") from exc
        # 404: ngx_cache_purge's answer for a URL the cache does not hold.
        if not (200 <= status < 300 or (self.target.style == "url" and status == 404)):
            raise PurgeFailed(f"{self.target.method} {url}: HTTP {status}")


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
