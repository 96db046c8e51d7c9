"""The upload API through the ASGI app: results, refusals, and that a refusal stores nothing."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.builders import make_sdist, make_wheel
from tests.conftest import AppClient, need
from tests.uploads import form_for, upload
from tilsit.auth.tokens import create_token
from tilsit.db.models import FileRow, JournalRow, ProjectRow, ReleaseRow, UserRow
from tilsit.index.manage import create_index, create_user, delete_file, get_index
from tilsit.instance import Instance


def snapshot(instance: Instance) -> tuple[set[str], dict[str, int], dict[str, bytes]]:
    """Everything an upload could leave behind: blobs, row counts, tree files."""
    blobs = set(instance.blobs)
    with instance.db.read() as session:
        counts = {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (ProjectRow, ReleaseRow, FileRow, JournalRow)
        }
    root = instance.settings.tree_dir
    tree = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return blobs, counts, tree


def test_upload_creates_project_and_pages(client: AppClient, token: str) -> None:
    wheel = make_wheel("Foo.Bar", "1.0", requires_python=">=3.8")
    response = upload(client, wheel, token)
    assert response.status_code == 200, response.text
    page = client.get("/simple/foo-bar/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert page.status_code == 200
    doc = page.json()
    assert [f["filename"] for f in doc["files"]] == [wheel.filename]
    assert doc["files"][0]["hashes"]["sha256"] == wheel.sha256
    assert doc["files"][0]["requires-python"] == ">=3.8"
    assert doc["files"][0]["size"] == len(wheel.data)
    metadata = client.get(doc["files"][0]["url"] + ".metadata")
    assert metadata.status_code == 200
    assert (
        hashlib.sha256(metadata.content).hexdigest() == doc["files"][0]["core-metadata"]["sha256"]
    )
    assert b"Name: Foo.Bar" in metadata.content
    assert client.get(doc["files"][0]["url"]).content == wheel.data
    root = client.get("/simple/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
    assert [p["name"] for p in root["projects"]] == ["foo-bar"]
    assert root["projects"][0]["_last-serial"] == doc["meta"]["_last-serial"]


def test_sdist_has_no_metadata_file(client: AppClient, token: str) -> None:
    sdist = make_sdist("foo", "1.0")
    assert upload(client, sdist, token).status_code == 200
    doc = client.get("/simple/foo/?format=json").json()
    assert doc["files"][0]["core-metadata"] is False
    assert client.get(doc["files"][0]["url"] + ".metadata").status_code == 404
    assert "data-core-metadata" not in client.get("/simple/foo/").text


def test_identical_reupload_is_ok_and_changes_nothing(
    client: AppClient, token: str, instance: Instance
) -> None:
    wheel = make_wheel("foo", "1.0")
    assert upload(client, wheel, token).status_code == 200
    before = snapshot(instance)
    again = upload(client, wheel, token)
    assert again.status_code == 200
    assert "already stored" in again.text
    assert snapshot(instance) == before


def test_same_filename_other_bytes_is_refused(
    client: AppClient, token: str, instance: Instance
) -> None:
    assert upload(client, make_wheel("foo", "1.0"), token).status_code == 200
    before = snapshot(instance)
    other = make_wheel("foo", "1.0", summary="different bytes")
    response = upload(client, other, token)
    assert response.status_code == 400
    assert "File already exists" in response.text
    assert snapshot(instance) == before


def test_deleted_filename_is_never_reusable(
    client: AppClient, token: str, instance: Instance
) -> None:
    wheel = make_wheel("foo", "1.0")
    assert upload(client, wheel, token).status_code == 200
    with instance.db.write() as session:
        delete_file(session, get_index(session, "main"), wheel.filename)
    instance.renderer.catch_up()
    assert client.get("/simple/foo/?format=json").json()["files"] == []
    for attempt in (wheel, make_wheel("foo", "1.0", summary="new bytes")):
        response = upload(client, attempt, token)
        assert response.status_code == 400
        assert "already been used" in response.text


def test_confusable_name_is_refused(client: AppClient, token: str, instance: Instance) -> None:
    assert upload(client, make_wheel("pillow", "1.0"), token).status_code == 200
    before = snapshot(instance)
    for name in ("pi1low", "PiIlow", "p-i-l-l-o-w"):
        response = upload(client, make_wheel(name, "1.0"), token)
        assert response.status_code == 400, name
        assert "too similar" in response.text
    assert snapshot(instance) == before


BAD_FORMS = [
    ({":action": "submit"}, "Unsupported ':action'"),
    ({":action": None}, "Missing ':action'"),
    ({"name": None}, "Missing required field 'name'"),
    ({"version": ""}, "Missing required field 'version'"),
    ({"name": "other"}, "Field 'name'"),
    ({"version": "2.0"}, "Field 'version'"),
    ({"version": "not a version"}, "Field 'version'"),
    ({"filetype": "sdist"}, "Field 'filetype'"),
    ({"sha256_digest": "0" * 64}, "Field 'sha256_digest'"),
    ({"md5_digest": "0" * 32}, "Field 'md5_digest'"),
    ({"blake2_256_digest": "0" * 64}, "Field 'blake2_256_digest'"),
    (
        {"md5_digest": None, "sha256_digest": None, "blake2_256_digest": None},
        "at least one message digest",
    ),
    ({"protocol_version": "2"}, "protocol_version"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_FORMS)
def test_bad_form_is_refused_and_stores_nothing(
    client: AppClient,
    token: str,
    instance: Instance,
    overrides: dict[str, str | None],
    message: str,
) -> None:
    before = snapshot(instance)
    response = upload(client, make_wheel("foo", "1.0"), token, **overrides)
    assert response.status_code == 400
    assert message in response.text
    assert snapshot(instance) == before


def test_filename_mismatching_metadata_is_refused(
    client: AppClient, token: str, instance: Instance
) -> None:
    before = snapshot(instance)
    wheel = make_wheel("foo", "1.0", metadata=b"Metadata-Version: 2.1\nName: foo\nVersion: 1.1\n\n")
    response = upload(client, wheel, token)
    assert response.status_code == 400
    assert "version" in response.text.lower()
    assert snapshot(instance) == before


def test_local_version_is_refused(client: AppClient, token: str) -> None:
    response = upload(client, make_wheel("foo", "1.0+local"), token)
    assert response.status_code == 400
    assert "local" in response.text


def test_not_an_archive_is_refused(client: AppClient, token: str, instance: Instance) -> None:
    before = snapshot(instance)
    wheel = make_wheel("foo", "1.0")
    wheel.data = b"this is not a zip file at all" * 10
    response = upload(client, wheel, token)
    assert response.status_code == 400
    assert snapshot(instance) == before


def test_upload_without_credentials_is_401(client: AppClient, instance: Instance) -> None:
    before = snapshot(instance)
    response = upload(client, make_wheel("foo", "1.0"), None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert snapshot(instance) == before


@pytest.mark.parametrize("secret", ["tilsit-" + "A" * 43, "not-a-token", ""])
def test_unknown_token_is_403(client: AppClient, instance: Instance, secret: str) -> None:
    response = upload(client, make_wheel("foo", "1.0"), secret or "x")
    assert response.status_code == 403
    assert "authentication" in response.text


def test_bearer_token_is_accepted(client: AppClient, token: str) -> None:
    wheel = make_wheel("foo", "1.0")
    response = client.post(
        "/legacy/",
        data=form_for(wheel),
        files={"content": (wheel.filename, wheel.data)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text


def test_basic_with_any_user_name(client: AppClient, token: str) -> None:
    wheel = make_wheel("foo", "1.0")
    credentials = base64.b64encode(f"alice:{token}".encode()).decode()
    response = client.post(
        "/legacy/",
        data=form_for(wheel),
        files={"content": (wheel.filename, wheel.data)},
        headers={"Authorization": f"Basic {credentials}"},
    )
    assert response.status_code == 200, response.text


def _token(instance: Instance, user: str, **scope: object) -> str:
    with instance.db.write() as session:
        row = session.scalars(select(UserRow).where(UserRow.name == user)).one_or_none()
        row = row or create_user(session, user)
        index_name = scope.pop("index", None)
        index = get_index(session, str(index_name)) if index_name else None
        return create_token(session, row, index=index, **scope).secret  # type: ignore[arg-type]


def test_project_scoped_token(client: AppClient, instance: Instance) -> None:
    scoped = _token(instance, "bob", projects=["foo"])
    assert upload(client, make_wheel("foo", "1.0"), scoped).status_code == 200
    response = upload(client, make_wheel("bar", "1.0"), scoped)
    assert response.status_code == 403
    assert "not valid for project 'bar'" in response.text


def test_index_scoped_token(client: AppClient, instance: Instance) -> None:
    with instance.db.write() as session:
        create_index(session, "team")
    instance.renderer.catch_up()
    scoped = _token(instance, "bob", index="team")
    assert upload(client, make_wheel("foo", "1.0"), scoped, "/team/legacy/").status_code == 200
    assert upload(client, make_wheel("foo", "1.0"), scoped, "/legacy/").status_code == 403
    assert client.get("/team/simple/foo/").status_code == 200
    assert client.get("/simple/foo/").status_code == 404


def test_expired_and_revoked_tokens(client: AppClient, instance: Instance) -> None:
    from datetime import UTC, datetime, timedelta

    expired = _token(instance, "bob", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    response = upload(client, make_wheel("foo", "1.0"), expired)
    assert response.status_code == 403
    assert "expired" in response.text


def test_other_users_project_is_forbidden(
    client: AppClient, instance: Instance, token: str
) -> None:
    assert upload(client, make_wheel("foo", "1.0"), token).status_code == 200
    mallory = _token(instance, "mallory")
    response = upload(client, make_wheel("foo", "1.1"), mallory)
    assert response.status_code == 403
    assert "may not upload" in response.text


def test_upload_to_unknown_index_is_404(client: AppClient, token: str) -> None:
    response = upload(client, make_wheel("foo", "1.0"), token, "/nope/legacy/")
    assert response.status_code == 404


def test_upload_never_redirects(client: AppClient, token: str) -> None:
    response = upload(client, make_wheel("foo", "1.0"), token, "/legacy")
    assert response.status_code == 200


def test_journal_serials_only_go_up(client: AppClient, token: str, instance: Instance) -> None:
    for version in ("1.0", "1.1", "2.0"):
        assert upload(client, make_wheel("foo", version), token).status_code == 200
    with instance.db.read() as session:
        serials = session.scalars(select(JournalRow.serial).order_by(JournalRow.serial)).all()
    assert serials == sorted(set(serials))
    doc = client.get("/simple/foo/?format=json").json()
    assert doc["meta"]["_last-serial"] == serials[-1]
    assert doc["versions"] == ["1.0", "1.1", "2.0"]


def test_missing_content_part(client: AppClient, token: str) -> None:
    response = client.post(
        "/legacy/",
        data={":action": "file_upload", "name": "foo", "version": "1.0"},
        files={"other": ("x", b"x")},
        auth=("__token__", token),
    )
    assert response.status_code == 400
    assert "no 'content'" in response.text


def test_not_multipart(client: AppClient, token: str) -> None:
    response = client.post(
        "/legacy/",
        content=b"{}",
        headers={"Content-Type": "application/json"},
        auth=("__token__", token),
    )
    assert response.status_code == 400
    assert "multipart/form-data" in response.text


def test_temp_files_are_cleaned_up(client: AppClient, token: str, instance: Instance) -> None:
    upload(client, make_wheel("foo", "1.0"), token)
    upload(client, make_wheel("foo", "1.0", summary="x"), token)
    upload(client, make_wheel("bar", "1.0"), token, sha256_digest="0" * 64)
    leftovers = list(Path(instance.settings.tmp_dir).iterdir())
    assert leftovers == []


CORPUS_REJECT = (
    Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "zip-confusion" / "reject"
)


@pytest.mark.parametrize(
    "archive", sorted(p.name for p in CORPUS_REJECT.glob("*.zip")) or ["(corpus absent)"]
)
def test_zip_confusion_uploads_store_nothing(
    client: AppClient, token: str, instance: Instance, archive: str
) -> None:
    """Each hostile archive of the shared corpus, sent as a wheel, is a 400 that leaves no trace."""
    need(CORPUS_REJECT.is_dir(), f"the zip-confusion corpus is not at {CORPUS_REJECT}")
    wheel = make_wheel("foo", "1.0")
    wheel.data = (CORPUS_REJECT / archive).read_bytes()
    before = snapshot(instance)
    response = upload(client, wheel, token)
    assert response.status_code == 400
    assert "Invalid distribution" in response.text
    assert snapshot(instance) == before
