"""Upstreams shaped like the non-tilsit indexes mirrors and proxies meet.

- ``pypiserver``: PEP 503 HTML only, links with ``#sha256=`` and nothing else
  (no ``data-requires-python``, no core metadata, no upload times), files under
  ``/packages/``, as pypiserver 2.x serves them;
- ``devpi``: HTML with ``data-requires-python`` and ``#sha256=``, and PEP 691
  JSON (with ``upload-time`` and ``requires-python``, no core metadata) when the
  client asks for it, under ``/root/pypi/+simple/``, files under ``/root/pypi/+f/``.

The plain directory tree is :class:`tests.upstream.static.StaticTree` behind
:class:`tests.upstream.static.StaticServer`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from html import escape
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from tests.builders import Dist
from tests.httpd import QuietHandler
from tilsit.spec.names import normalize

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class Listed:
    dist: Dist
    requires_python: str | None = None  # said on the page (devpi only)
    upload_time: datetime | None = None  # said in the JSON page (devpi only)


class _Handler(QuietHandler):
    protocol_version = "HTTP/1.1"
    server: ShapedUpstream

    def do_GET(self) -> None:
        path = unquote(self.path.split("?", 1)[0])
        wants_json = SIMPLE_JSON in self.headers.get("accept", "")
        found = self.server.answer(path, wants_json)
        if found is None:
            self._send(404, b"not found\n", "text/plain")
        else:
            self._send(200, *found)

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ShapedUpstream(ThreadingHTTPServer):
    """A pypiserver- or devpi-shaped index of ``projects``, on 127.0.0.1."""

    daemon_threads = True

    def __init__(self, shape: str) -> None:
        assert shape in ("pypiserver", "devpi")
        super().__init__(("127.0.0.1", 0), _Handler)
        self.shape = shape
        self.projects: dict[str, list[Listed]] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def simple_url(self) -> str:
        return f"{self.url}{self._simple}"

    @property
    def _simple(self) -> str:
        return "/simple/" if self.shape == "pypiserver" else "/root/pypi/+simple/"

    @property
    def _files(self) -> str:
        return "/packages/" if self.shape == "pypiserver" else "/root/pypi/+f/"

    def add(self, project: str, *listed: Listed) -> None:
        with self.lock:
            self.projects.setdefault(normalize(project), []).extend(listed)

    def answer(self, path: str, wants_json: bool) -> tuple[bytes, str] | None:
        with self.lock:
            if path.startswith(self._files):
                filename = path[len(self._files) :]
                for entries in self.projects.values():
                    for entry in entries:
                        if entry.dist.filename == filename:
                            return entry.dist.data, "application/octet-stream"
                return None
            if not path.startswith(self._simple):
                return None
            name = path[len(self._simple) :].strip("/")
            json_page = wants_json and self.shape == "devpi"
            if not name:
                return self._root(json_page)
            if name not in self.projects:
                return None
            return self._page(name, json_page)

    def _root(self, json_page: bool) -> tuple[bytes, str]:
        if json_page:
            doc = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in self.projects]}
            return json.dumps(doc).encode(), SIMPLE_JSON
        links = "".join(f'<a href="{n}/">{n}</a><br>\n' for n in sorted(self.projects))
        return (
            f"<html><head><title>Simple Index</title></head><body>\n{links}</body></html>\n".encode(),
            "text/html",
        )

    def _page(self, name: str, json_page: bool) -> tuple[bytes, str]:
        entries = self.projects[name]
        if json_page:
            files = []
            for entry in entries:
                doc: dict[str, Any] = {
                    "filename": entry.dist.filename,
                    "url": f"{self._files}{entry.dist.filename}",
                    "hashes": {"sha256": entry.dist.sha256},
                    "requires-python": entry.requires_python,
                }
                if entry.upload_time is not None:
                    doc["upload-time"] = entry.upload_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                files.append(doc)
            body = {"meta": {"api-version": "1.1"}, "name": name, "files": files}
            return json.dumps(body).encode(), SIMPLE_JSON
        anchors = []
        for entry in entries:
            href = f"{self._files}{entry.dist.filename}#sha256={entry.dist.sha256}"
            extra = ""
            if self.shape == "devpi" and entry.requires_python:
                extra = f' data-requires-python="{escape(entry.requires_python)}"'
            anchors.append(f'<a href="{escape(href)}"{extra}>{entry.dist.filename}</a><br>\n')
        html = (
            f"<html><head><title>Links for {name}</title></head><body>\n"
            f"<h1>Links for {name}</h1>\n{''.join(anchors)}</body></html>\n"
        )
        return html.encode(), "text/html"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
