"""The upload form as twine sends it, for tests that drive the upload API directly."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import httpx

from tests.builders import Dist


class Poster(Protocol):
    def post(self, url: str, **kwargs: Any) -> httpx.Response: ...


def form_for(dist: Dist, **overrides: str | None) -> dict[str, str]:
    name, _, rest = dist.filename.partition("-")
    version = rest.split("-")[0].removesuffix(".tar.gz")
    fields: dict[str, str | None] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name,
        "version": version,
        "filetype": "bdist_wheel" if dist.filename.endswith(".whl") else "sdist",
        "pyversion": "py3" if dist.filename.endswith(".whl") else "source",
        "md5_digest": hashlib.md5(dist.data, usedforsecurity=False).hexdigest(),
        "sha256_digest": dist.sha256,
        "blake2_256_digest": hashlib.blake2b(dist.data, digest_size=32).hexdigest(),
        **overrides,
    }
    return {k: v for k, v in fields.items() if v is not None}


def upload(
    client: Poster,
    dist: Dist,
    token: str | None,
    url: str = "/legacy/",
    *,
    filename: str | None = None,
    **overrides: str | None,
) -> httpx.Response:
    auth = ("__token__", token) if token is not None else None
    return client.post(
        url,
        data=form_for(dist, **overrides),
        files={"content": (filename or dist.filename, dist.data, "application/octet-stream")},
        auth=auth,
    )
