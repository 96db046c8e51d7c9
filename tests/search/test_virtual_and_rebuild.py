"""A virtual index's results are its owners' documents, only for names it shows; and
``tilsit search rebuild`` makes the same documents again from the database."""

from __future__ import annotations

from sqlalchemy import delete, select, text

from tests.conftest import run_cli
from tests.search.conftest import Search, wheel
from tilsit.db.models import SearchDocRow, SearchStateRow
from tilsit.index.manage import create_index, get_index, set_yanked
from tilsit.index.policies import set_policy
from tilsit.index.policy_doc import parse_policy
from tilsit.index.virtual import reserve, set_members


def _stack(search: Search) -> None:
    with search.instance.db.write() as db:
        create_index(db, "internal", actor="test")
        create_index(db, "ext", actor="test")
        virtual = create_index(db, "all", "virtual", actor="test")
        set_members(db, virtual, ["internal", "ext"], actor="test")
    search.instance.renderer.catch_up()


def test_a_virtual_index_shows_its_owners_document(search: Search) -> None:
    _stack(search)
    search.publish(wheel("shared-lib", "1.0", "The external copy."), index="ext")
    assert sorted(search.names("shared-lib")) == ["all/shared_lib", "ext/shared_lib"]
    found = search.json("shared-lib", index="all").json()["results"]
    assert [r["summary"] for r in found] == ["The external copy."]
    # The first member takes the name over: the virtual index's document follows it.
    search.publish(wheel("shared-lib", "2.0", "The internal copy."), index="internal")
    found = search.json("shared-lib", index="all").json()["results"]
    assert [(r["summary"], r["version"]) for r in found] == [("The internal copy.", "2.0")]
    assert search.names("external", index="all") == []
    assert search.names("external", index="ext") == ["ext/shared_lib"]


def test_a_name_the_virtual_index_does_not_show_is_not_in_its_results(search: Search) -> None:
    _stack(search)
    search.publish(wheel("acme-tool", "1.0", "Looks like ours."), index="ext")
    assert "all/acme_tool" in search.names("acme-tool")
    # Reserved for the internal index, which has no such project: no member supplies it.
    with search.instance.db.write() as db:
        reserve(db, get_index(db, "internal"), "acme-*", actor="test")
    search.instance.renderer.catch_up()
    assert search.names("acme-tool") == ["ext/acme_tool"]
    assert search.names("looks", index="all") == []


def _documents(search: Search) -> list[tuple[int, str, str, str, str]]:
    with search.instance.db.read() as db:
        return [
            tuple(row)  # type: ignore[misc]
            for row in db.execute(
                select(
                    SearchDocRow.index_id,
                    SearchDocRow.normalized,
                    SearchDocRow.version,
                    SearchDocRow.summary,
                    SearchDocRow.description,
                ).order_by(SearchDocRow.index_id, SearchDocRow.normalized)
            )
        ]


def test_search_rebuild_makes_the_same_documents(search: Search) -> None:
    _stack(search)
    search.publish(wheel("shared-lib", "1.0", "Shared.", readme="Readme words."), index="ext")
    search.publish(wheel("flask", "3.0", "A micro web framework."))
    before = _documents(search)
    assert len(before) == 3
    with search.instance.db.write() as db:
        db.execute(delete(SearchDocRow))
        if db.get_bind().dialect.name == "sqlite":
            db.execute(text("DELETE FROM search_names"))
    assert search.names("flask") == []
    result = run_cli(search.instance.settings, "search", "rebuild")
    assert "search index rebuilt: 3 projects" in result.stdout, result.stdout + result.stderr
    assert _documents(search) == before
    assert search.names("reqests") == []
    assert search.names("flsk") == ["main/flask"]  # the typo table is made again too
    with search.instance.db.read() as db:
        state = db.get(SearchStateRow, 1)
        assert state is not None and state.serial > 0


def test_a_name_whose_every_file_a_policy_hides_is_not_in_its_results(search: Search) -> None:
    _stack(search)
    search.publish(wheel("old-lib", "1.0", "Withdrawn soon."), index="ext")
    doc = parse_policy("deny = { yanked = true }", "p.toml")
    with search.instance.db.write() as db:
        set_policy(db, get_index(db, "all"), doc, "", "test")
    search.instance.renderer.catch_up()
    assert "all/old_lib" in search.names("old-lib")
    with search.instance.db.write() as db:
        set_yanked(db, get_index(db, "ext"), "old-lib", "1.0", yanked=True, actor="test")
    search.instance.renderer.catch_up()
    # The owner still lists it (yanked); the virtual index's page lists no file of it.
    assert search.names("old-lib") == ["ext/old_lib"]
