"""A plain static tree of simple pages and files, served the way nginx serves one.

Strong ETags (content hashes) and ``304 Not Modified`` on ``If-None-Match``; no
serials anywhere. :class:`StaticTree` writes PEP 503 HTML pages for real
distributions (``files/<filename>``, optional ``.metadata`` files).
"""

from __future__ import annotations

import hashlib
import threading
from html import escape
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from tests.builders import Dist
from tests.httpd import QuietHandler
from tilsit.spec.names import normalize


class _Handler(QuietHandler):
    protocol_version = "HTTP/1.1"
    server: StaticServer

    def do_GET(self) -> None:
        path = unquote(self.path.split("?", 1)[0])
        target = (self.server.root / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.server.root.resolve()):
            self._send(404, b"")
            return
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            self._send(404, b"not found\n")
            return
        body = target.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        status = 304 if self.headers.get("if-none-match") == etag else 200
        kind = "text/html" if target.name.endswith(".html") else "application/octet-stream"
        self._send(status, body, {"etag": etag, "content-type": kind})

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        with self.server.lock:
            self.server.log.append((self.path, status))
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)


class StaticServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.lock = threading.Lock()
        self.log: list[tuple[str, int]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def taken(self) -> list[tuple[str, int]]:
        """The requests logged since the last call."""
        with self.lock:
            log, self.log = self.log, []
        return log

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class StaticTree:
    """``simple/`` pages and ``files/`` on disk, rewritten as projects change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.projects: dict[str, list[tuple[Dist, dict[str, str]]]] = {}
        self.unhashed: set[str] = set()
        (root / "files").mkdir(parents=True, exist_ok=True)

    def add(
        self,
        project: str,
        dist: Dist,
        *,
        metadata: bytes | None = None,
        hashed: bool = True,
        attrs: dict[str, str] | None = None,
    ) -> None:
        """List ``dist``; ``metadata`` also publishes ``<file>.metadata``; ``attrs`` are data-*."""
        dist.write(self.root / "files")
        if not hashed:
            self.unhashed.add(dist.filename)
        extra = dict(attrs or {})
        if metadata is not None:
            (self.root / "files" / f"{dist.filename}.metadata").write_bytes(metadata)
            extra["data-core-metadata"] = f"sha256={hashlib.sha256(metadata).hexdigest()}"
        self.projects.setdefault(normalize(project), []).append((dist, extra))
        self.write()

    def remove(self, project: str, filename: str | None = None) -> None:
        name = normalize(project)
        if filename is None:
            del self.projects[name]
        else:
            self.projects[name] = [(d, a) for d, a in self.projects[name] if d.filename != filename]
        self.write()

    def write(self) -> None:
        simple = self.root / "simple"
        simple.mkdir(exist_ok=True)
        links = "".join(f'<a href="{n}/">{n}</a>\n' for n in sorted(self.projects))
        (simple / "index.html").write_text(
            f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n"
        )
        for name, dists in self.projects.items():
            anchors = []
            for dist, attrs in dists:
                extra = "".join(f' {k}="{escape(v)}"' for k, v in attrs.items())
                href = f"../../files/{dist.filename}"
                if dist.filename not in self.unhashed:
                    href += f"#sha256={dist.sha256}"
                anchors.append(f'<a href="{escape(href)}"{extra}>{dist.filename}</a><br/>\n')
            page = simple / name
            page.mkdir(exist_ok=True)
            (page / "index.html").write_text(
                f"<!DOCTYPE html>\n<html><body>\n{''.join(anchors)}</body></html>\n"
            )
