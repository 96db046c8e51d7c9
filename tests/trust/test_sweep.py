"""The sweep and the re-signing pass in small steps: bounded by count, never removing a
link a kept bin lists (also against rounds between its steps), and holding the
render lock one step at a time. Driven through IndexRepository directly, as the
renderer drives it: hashed links are placed before the round that lists them."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from tuf.api.metadata import Metadata, Snapshot, TargetFile, Targets, Timestamp

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.db.models import IndexRow
from tilsit.freshness import freshness_pass, sweep_pass
from tilsit.instance import Instance
from tilsit.store.tree import Tree
from tilsit.trust import fresh
from tilsit.trust.fresh import Sweepable, refresh, sweep
from tilsit.trust.keys import KeySet, TrustSettings, init_keys
from tilsit.trust.layout import hashed_path
from tilsit.trust.mirror import CARRIED
from tilsit.trust.peek import bin_head
from tilsit.trust.repository import IndexRepository, versioned
from tilsit.trust.settings import utcnow

# The signing time of the repositories built here. The sweep ages a snapshot by the
# mtime of the one after it, so its ``now`` comes from the clock when it runs
# (:func:`aged`): this module may run more than the grace period after it was imported.
NOW = datetime.now(UTC).replace(microsecond=0)
GRACE = 3600
PATHS = [f"simple/p{n}/index.html" for n in range(8)]
SHAS = [f"{n:x}" * 64 for n in range(5)]


def aged() -> datetime:
    """A moment past the grace period of every file written so far."""
    return utcnow() + timedelta(seconds=2 * GRACE)


def _keys(base: Path, bits: int) -> KeySet:
    return init_keys(base / "data", TrustSettings(bin_bits=bits), NOW)


class Index:
    """A TUF repository and a renderer's part in it: links placed, then a round."""

    def __init__(self, base: Path, keys: KeySet, bits: int = 2) -> None:
        self.tree = Tree(base / "tree", base / "tmp")
        self.repo = IndexRepository(self.tree, "main", keys, TrustSettings(bin_bits=bits))
        self.tuf = self.tree.path("main/tuf")

    def round(self, changes: dict[str, str | None], now: datetime = NOW) -> None:
        batch: dict[str, TargetFile | None] = {}
        for path, sha in changes.items():
            if sha is None:
                batch[path] = None
                continue
            # As the renderer does: Tree.link places a link only if none is there.
            link = self.tree.path(hashed_path("main", path, sha))
            if not link.exists():
                self.tree.write(hashed_path("main", path, sha), sha.encode())
            batch[path] = TargetFile(64, {"sha256": sha}, path)
        self.repo.round(now, batch)

    def current(self) -> int:
        raw = (self.tuf / "timestamp.json").read_bytes()
        return Metadata[Timestamp].from_bytes(raw).signed.snapshot_meta.version

    def files(self, role: str) -> list[int]:
        found = (versioned(p.name) for p in self.tuf.iterdir())
        return sorted(v for v, r in (f for f in found if f is not None) if r == role)

    def bin_roles(self) -> list[str]:
        return list(self.repo.keys.bins.get_roles())

    def check_whole(self) -> None:
        """Every snapshot left on disk is whole: its bins, and every link they list."""
        for version in self.files("snapshot"):
            raw = (self.tuf / f"{version}.snapshot.json").read_bytes()
            for name, meta in Metadata[Snapshot].from_bytes(raw).signed.meta.items():
                if name == "targets.json":
                    continue
                path = self.tuf / f"{meta.version}.{name}"
                assert path.is_file(), f"snapshot {version} lists {path.name}, swept"
                for target, info in (
                    Metadata[Targets].from_bytes(path.read_bytes()).signed.targets.items()
                ):
                    link = hashed_path("main", target, info.hashes["sha256"])
                    assert self.tree.path(link).is_file(), f"{path.name} lists {link}, swept"


rounds = st.lists(
    st.dictionaries(st.sampled_from(PATHS), st.sampled_from([*SHAS, None]), min_size=1),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=st.lists(st.tuples(rounds, st.integers(0, 3), st.booleans()), min_size=1, max_size=5))
def test_many_rounds_keep_at_most_k_old_versions_and_every_listed_link(
    tmp_path_factory: object, script: list[tuple[list[dict[str, str | None]], int, bool]]
) -> None:
    base = tmp_path_factory.mktemp("repo")  # type: ignore[attr-defined]
    index = Index(base, _keys(base, 2))
    for batch, keep, past_grace in script:
        for changes in batch:
            index.round(changes)
        # Within the grace period the count bound alone decides; past it, age does.
        sweep(index.repo, aged() if past_grace else utcnow(), GRACE, keep)
        current = index.current()
        superseded = [v for v in index.files("snapshot") if v < current]
        assert len(superseded) <= (0 if past_grace else keep)
        for role in index.bin_roles():
            assert len(index.files(role)) <= (1 if past_grace else keep + 1), role
        index.check_whole()


def test_a_round_between_sweep_steps_that_lists_an_old_link_again_keeps_it(
    tmp_path: Path,
) -> None:
    index = Index(tmp_path, _keys(tmp_path, 2))
    page = PATHS[0]
    index.round({page: SHAS[0]})
    index.round({page: SHAS[1]})  # SHAS[0] is now listed only by the old bin version
    old_link = index.tree.path(hashed_path("main", page, SHAS[0]))
    assert old_link.is_file()
    entered = []

    @contextmanager
    def render_first() -> Iterator[None]:
        # An upload's render got the lock first: its page is back to the old bytes,
        # whose link is still there, so Tree.link leaves it and the new bin lists it.
        if not entered:
            index.round({page: SHAS[0]})
        entered.append(1)
        yield

    swept = sweep(index.repo, NOW, GRACE, 0, render_first)
    assert entered, "the sweep never took the lock"
    assert swept.bins, "the old bin version was not swept"
    assert old_link.is_file()
    index.check_whole()
    # Once nothing lists it, it goes.
    index.round({page: SHAS[2]})
    sweep(index.repo, NOW, GRACE, 0)
    assert not old_link.exists()
    index.check_whole()


@dataclass
class CountingLock:
    """A hold that records how many bins were parsed while it was held."""

    held: bool = False
    per_hold: list[int] = field(default_factory=list)
    outside: int = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        assert not self.held
        self.held = True
        self.per_hold.append(0)
        try:
            yield
        finally:
            self.held = False

    def parsed(self) -> None:
        if self.held:
            self.per_hold[-1] += 1
        else:
            self.outside += 1


def _count_parses(repo: IndexRepository, lock: CountingLock) -> None:
    load = repo.load_bin

    def counted(name: str, version: int | None = None) -> Metadata[Targets]:
        lock.parsed()
        return load(name, version)

    repo.load_bin = counted  # type: ignore[method-assign]


def test_refresh_re_signs_due_bins_a_step_per_hold_without_parsing_them_to_find_them(
    tmp_path: Path,
) -> None:
    bits = 6
    index = Index(tmp_path, _keys(tmp_path, bits), bits)
    # Made 13 hours ago: every bin has less than half its day left.
    index.round(dict.fromkeys(PATHS, SHAS[0]), NOW - timedelta(hours=13))
    lock = CountingLock()
    _count_parses(index.repo, lock)
    done = refresh(index.repo, NOW, lock, step_bins=8)
    assert sorted(done.bins) == sorted(index.bin_roles())
    # Finding what is due reads each bin's head only; each hold parses one step's bins.
    assert lock.outside == 0
    assert max(lock.per_hold) <= 8
    assert len(lock.per_hold) >= 2**bits // 8
    assert not refresh(index.repo, NOW, lock, step_bins=8)
    index.check_whole()


def test_sweep_holds_the_lock_once_per_bin_and_parses_outside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bits = 4
    index = Index(tmp_path, _keys(tmp_path, bits), bits)
    for n, sha in enumerate(SHAS):
        index.round(dict.fromkeys(PATHS, sha) | {f"simple/q{n}/index.html": sha})
    lock = CountingLock()
    listed = fresh._listed

    def counted(repo: Sweepable, role: str, version: int) -> set[tuple[str, str]]:
        lock.parsed()
        return listed(repo, role, version)

    monkeypatch.setattr(fresh, "_listed", counted)
    swept = sweep(index.repo, aged(), GRACE, 1, lock)
    touched = {b.split(".", 1)[1] for b in swept.bins}
    assert len(touched) > 1
    # At most one hold per bin (none for a bin whose old versions list no link to
    # remove), and nothing was written since the plan: no bin is read under the lock.
    assert 1 <= swept.steps == len(lock.per_hold) <= len(touched)
    assert lock.per_hold == [0] * swept.steps
    assert lock.outside > 0
    index.check_whole()


def test_bin_expiry_is_read_from_the_head_as_parsing_reads_it(tmp_path: Path) -> None:
    index = Index(tmp_path, _keys(tmp_path, 2))
    index.round(dict.fromkeys(PATHS, SHAS[1]))
    role = index.bin_roles()[0]
    path = index.tuf / f"{index.files(role)[-1]}.{role}.json"
    parsed = Metadata[Targets].from_bytes(path.read_bytes()).signed.expires
    assert bin_head(path).expires == parsed
    assert bin_head(path).size == path.stat().st_size
    # Another shape (indented, keys in another order) is parsed whole.
    pretty = tmp_path / "pretty.json"
    document = json.loads(path.read_bytes())
    pretty.write_text(json.dumps({"signed": document["signed"], "signatures": []}, indent=2))
    assert bin_head(pretty).expires == parsed


def test_serve_sweeps_an_index_once_keep_versions_new_snapshots_piled_up(
    instance: Instance, client: AppClient, token: str
) -> None:
    instance.settings = dataclasses.replace(instance.settings, tuf_keep_versions=2)
    tuf = instance.settings.tree_dir / "main" / "tuf"
    marks: dict[str, int] = {}
    freshness_pass(instance, marks)
    assert upload(client, make_wheel("piled", "1.0"), token).status_code == 200
    # One new snapshot: fewer than tuf_keep_versions, nothing to do yet.
    assert sweep_pass(instance, marks) == []
    for n in range(1, 4):
        assert upload(client, make_wheel("piled", f"1.{n}"), token).status_code == 200
    current = instance.signing.repo("main").timestamp().signed.snapshot_meta.version
    # Within the grace period, and still only the newest two superseded stay.
    assert sweep_pass(instance, marks)
    left = sorted(int(p.name.split(".")[0]) for p in tuf.glob("*.snapshot.json"))
    assert left == [current - 2, current - 1, current]
    assert marks["main"] == current
    assert sweep_pass(instance, marks) == []


def test_a_round_between_two_holds_of_one_bin_keeps_the_link_it_lists_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fresh, "STEP_LINKS", 1)  # one removal per hold
    index = Index(tmp_path, _keys(tmp_path, 2))
    page = PATHS[0]
    for sha in SHAS[:3]:
        index.round({page: sha})
    links = [index.tree.path(hashed_path("main", page, sha)) for sha in SHAS[:2]]
    holds = []

    @contextmanager
    def render_second() -> Iterator[None]:
        holds.append(1)
        if len(holds) == 2:  # after the first removal, before the second
            index.round({page: SHAS[1]})
        yield

    sweep(index.repo, NOW, GRACE, 0, render_second)
    assert len(holds) == 2
    assert not links[0].exists()
    assert links[1].is_file()
    index.check_whole()


def test_a_pass_never_signs_an_index_a_sync_started_carrying_meanwhile(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = instance.signing.repo("main")
    roles = list(instance.signing.keys.bins.get_roles())
    with instance.renderer.locked():
        repo.round(utcnow() - timedelta(hours=13), resign=roles)  # every bin due
    tuf = instance.settings.tree_dir / "main" / "tuf"
    before = (tuf / "timestamp.json").read_bytes()
    locked = instance.renderer.locked
    carried: list[bool] = []

    @contextmanager
    def sync_first() -> Iterator[None]:
        with locked():
            if not carried:
                # What a mirror's first sync does under the lock, after the pass listed
                # the index: it copies the origin's metadata and marks the index carried.
                with instance.db.write() as session:
                    row = session.scalars(select(IndexRow).where(IndexRow.name == "main")).one()
                    row.kind = "mirror"
                    row.options = {**row.options, "tuf": {"mode": CARRIED}}
                carried.append(True)
            yield

    monkeypatch.setattr(instance.renderer, "locked", sync_first)
    freshness_pass(instance)
    assert carried
    assert (tuf / "timestamp.json").read_bytes() == before, "the origin's metadata was re-signed"
