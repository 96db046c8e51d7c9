"""A curated virtual index over the review queue: an approved release appears with its
original files, hashes and upload-time; a pending or rejected one stays out; a hosted one
never waits. (The curated rule is the policy's; this shows the queue's rows reach it.)"""

from __future__ import annotations

import json
from typing import Any

from tests.reviews.conftest import MIRRORED, WHEN, mirrored
from tilsit.index.manage import get_index
from tilsit.index.policies import set_policy
from tilsit.index.policy_doc import parse_policy
from tilsit.index.reviews import approve, reject, request_review
from tilsit.instance import Instance


def _page(instance: Instance, name: str) -> dict[str, Any] | None:
    path = instance.settings.tree_dir / "all" / "simple" / name / "index.v1.json"
    return json.loads(path.read_bytes()) if path.exists() else None


def _files(instance: Instance, name: str) -> dict[str, tuple[str, str | None]]:
    doc = _page(instance, name)
    if doc is None:
        return {}
    return {f["filename"]: (f["hashes"]["sha256"], f.get("upload-time")) for f in doc["files"]}


def test_an_approved_release_appears_as_upstream_offers_it(stack: Instance) -> None:
    with stack.db.write() as session:
        curated = parse_policy("curated = { enabled = true }", "curated.toml")
        set_policy(session, get_index(session, "all"), curated, "", "cli")
    stack.renderer.catch_up()
    assert _files(stack, "requests-ish") == {}
    assert list(_files(stack, "internal-tool")) == ["internal_tool-1.0-py3-none-any.whl"]

    with stack.db.write() as session:
        request_review(session, get_index(session, "all"), "requests-ish", "1.0", actor="dev")
        request_review(session, get_index(session, "all"), "requests-ish", "2.0", actor="dev")
    stack.renderer.catch_up()
    assert _files(stack, "requests-ish") == {}

    with stack.db.write() as session:
        approve(session, get_index(session, "all"), "requests-ish", "1.0", actor="cli")
        reject(session, get_index(session, "all"), "requests-ish", "2.0", reason="no", actor="cli")
    stack.renderer.catch_up()
    upstream = {f.filename: f for f in (mirrored(stack, "requests-ish", v) for v in MIRRORED)}
    wanted = upstream["requests_ish-1.0-py3-none-any.whl"]
    shown = _files(stack, "requests-ish")
    assert list(shown) == [wanted.filename]
    sha256, upload_time = shown[wanted.filename]
    assert sha256 == wanted.sha256
    assert upload_time is not None and upload_time.startswith(WHEN.strftime("%Y-%m-%dT%H:%M:%S"))
    doc = _page(stack, "requests-ish")
    assert doc is not None and doc["versions"] == ["1.0"]
