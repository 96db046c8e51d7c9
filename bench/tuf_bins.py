"""TUF refresh bytes after one upload, by bin count, raw and gzip-compressed.

    .venv/bin/python bench/tuf_bins.py [--targets 400000] [--bits 8,10,11,12,13,14]
                                      [--uploads 5] [--versions 10000]
    .venv/bin/python bench/tuf_bins.py --real [--targets 400000] [--bits 10] [--to-bits 12]

``--real`` signs the index with tilsit's own repository code in a temporary tree (fsync
on), measures the refresh from the files on disk (with their ``.gz`` copies), re-cuts it
as ``tilsit keys rebin`` does (timing that round) and measures again.

What a returning client downloads after one upload into an index of N targets: the
new ``timestamp.json``, the new snapshot and every bin whose version moved. An upload
of a new version changes six targets: its project's two pages, the wheel, its
``.metadata`` and the index's two pages (the project list). The index is synthetic
(``--targets / 4`` projects, each with two pages, one wheel and its ``.metadata``,
as at 100,000 projects). Everything is built in memory with python-tuf's Metadata
API, signed with an ed25519 key and serialised as tilsit signs it (compact JSON);
only the bins an upload touches are built, so a run at 400k targets takes seconds.
Bin and snapshot versions are drawn from 1..``--versions`` (a long-lived index:
the version numbers' digits are part of the snapshot's size).

Gzip: level 9, as ``tilsit`` writes the ``.gz`` it serves beside each metadata file
(and nginx's ``gzip_static`` serves).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Snapshot, TargetFile, Targets, Timestamp

from tilsit.store.tree import Tree
from tilsit.trust.keys import SERIALIZER, TrustSettings, init_keys
from tilsit.trust.layout import file_target
from tilsit.trust.repository import IndexRepository
from tilsit.trust.rotation import rebin

_EXPIRES = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _project(n: int) -> list[TargetFile]:
    name = f"project-{n}"
    found = [
        TargetFile(2000 + n % 977, {"sha256": _digest(f"{name}/{page}")}, f"simple/{name}/{page}")
        for page in ("index.html", "index.v1.json")
    ]
    sha = _digest(f"{name}-wheel")
    wheel = file_target(sha, f"project_{n}-1.0-py3-none-any.whl")
    found.append(TargetFile(50_000 + n, {"sha256": sha}, wheel))
    found.append(TargetFile(900 + n % 311, {"sha256": _digest(wheel)}, wheel + ".metadata"))
    return found


def _prefix(path: str) -> int:
    """The first 32 bits of sha256(path): the bin of ``path`` at any bit length is a prefix."""
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:4], "big")


def _bin_name(index: int, bits: int) -> str:
    return f"bins-{index:0{(bits + 3) // 4}x}"


def _size(data: bytes) -> tuple[int, int]:
    return len(data), len(gzip.compress(data, 9, mtime=0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=400_000)
    parser.add_argument("--bits", default="8,10,11,12,13,14")
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--versions", type=int, default=10_000)
    args = parser.parse_args()
    signer = CryptoSigner.generate_ed25519()
    rng = random.Random(12)
    projects = args.targets // 4
    # Every target's 32-bit prefix, kept with the project that makes it (rebuilt on demand).
    prefixes: list[tuple[int, int]] = []  # (prefix, project)
    for n in range(projects):
        for target in _project(n):
            prefixes.append((_prefix(target.path), n))
    print(f"{len(prefixes):,} targets ({projects:,} projects); versions 1..{args.versions:,}")
    print(
        f"{'bits':>4} {'bins':>6} {'bin raw':>8} {'bin gz':>7} {'snap raw':>9} {'snap gz':>8}"
        f" {'touched':>7} {'refresh raw':>12} {'refresh gz':>11}"
    )
    for bits in [int(b) for b in args.bits.split(",")]:
        count = 1 << bits
        shift = 32 - bits
        snapshot = Metadata(Snapshot(expires=_EXPIRES))
        snapshot.signed.version = rng.randint(1, args.versions)
        snapshot.signed.meta = {
            f"{_bin_name(i, bits)}.json": MetaFile(rng.randint(1, args.versions))
            for i in range(count)
        }
        snapshot.signed.meta["targets.json"] = MetaFile(3)
        totals: list[tuple[int, int]] = []
        bin_sizes: list[tuple[int, int]] = []
        touched_counts = []
        for k in range(args.uploads):
            n = rng.randrange(projects)
            changed = _project(n)[:2]  # the project's pages, re-rendered
            sha = _digest(f"upload-{k}")
            wheel = file_target(sha, f"project_{n}-9.{k}-py3-none-any.whl")
            changed.append(TargetFile(50_000, {"sha256": sha}, wheel))
            changed.append(TargetFile(900, {"sha256": _digest(wheel)}, wheel + ".metadata"))
            changed += [
                TargetFile(9_600_000, {"sha256": _digest(f"{page}-{k}")}, page)
                for page in ("simple/index.html", "simple/index.v1.json")
            ]
            wanted = {_prefix(t.path) >> shift for t in changed}
            members: dict[int, set[int]] = {b: set() for b in wanted}
            for prefix, owner in prefixes:
                if prefix >> shift in members:
                    members[prefix >> shift].add(owner)
            raw = gz = 0
            for b in sorted(wanted):
                md = Metadata(Targets(expires=_EXPIRES))
                md.signed.version = rng.randint(1, args.versions)
                for owner in members[b]:
                    for t in _project(owner):
                        if _prefix(t.path) >> shift == b:
                            md.signed.targets[t.path] = t
                for t in changed:
                    if _prefix(t.path) >> shift == b:
                        md.signed.targets[t.path] = t
                md.sign(signer)
                size = _size(md.to_bytes(SERIALIZER))
                bin_sizes.append(size)
                raw += size[0]
                gz += size[1]
                snapshot.signed.meta[f"{_bin_name(b, bits)}.json"].version += 1
            snapshot.signed.version += 1
            snapshot.signatures.clear()
            snapshot.sign(signer)
            snap_bytes = snapshot.to_bytes(SERIALIZER)
            snap = _size(snap_bytes)
            timestamp = Metadata(Timestamp(expires=_EXPIRES))
            timestamp.signed.snapshot_meta = MetaFile(
                snapshot.signed.version,
                len(snap_bytes),
                {"sha256": hashlib.sha256(snap_bytes).hexdigest()},
            )
            timestamp.sign(signer)
            ts = len(timestamp.to_bytes(SERIALIZER))  # small: served as is
            totals.append((ts + snap[0] + raw, ts + snap[1] + gz))
            touched_counts.append(len(wanted))
        print(
            f"{bits:>4} {count:>6} {statistics.mean(s[0] for s in bin_sizes):>8,.0f}"
            f" {statistics.mean(s[1] for s in bin_sizes):>7,.0f} {snap[0]:>9,} {snap[1]:>8,}"
            f" {statistics.mean(touched_counts):>7.1f}"
            f" {statistics.median(t[0] for t in totals):>12,.0f}"
            f" {statistics.median(t[1] for t in totals):>11,.0f}"
        )


def _files(tuf: Path, names: list[str]) -> tuple[int, int]:
    """Bytes a client downloads for ``names``: plain, and gzip where a copy is served."""
    raw = gz = 0
    for name in names:
        size = (tuf / name).stat().st_size
        packed = tuf / f"{name}.gz"
        raw += size
        gz += packed.stat().st_size if packed.exists() else size
    return raw, gz


def real(targets: int, bits: int, to_bits: int, uploads: int) -> None:
    """The repository as tilsit runs it: sign ``targets`` in ``2^bits`` bins, re-cut to
    ``2^to_bits`` (timed: the round a rebin makes), then refresh bytes per upload from
    the files on disk, before and after."""
    trust = TrustSettings(bin_bits=bits)
    with tempfile.TemporaryDirectory() as tmp:
        now = datetime.now(UTC).replace(microsecond=0)
        keys = init_keys(Path(tmp) / "data", trust, now)
        tree = Tree(Path(tmp) / "tree", Path(tmp) / "tmp")
        repo = IndexRepository(tree, "main", keys, trust)
        everything = {t.path: t for n in range(targets // 4) for t in _project(n)}
        started = time.perf_counter()
        repo.round(now, everything, replace=True)
        print(
            f"{len(everything):,} targets signed in {1 << bits} bins: {time.perf_counter() - started:.1f} s"
        )
        del everything
        tuf = tree.path("main/tuf")

        def refresh_bytes(tag: str) -> None:
            seen = []
            for k in range(uploads):
                before = {n: m.version for n, m in repo.snapshot().signed.meta.items()}
                n = (k * 7919) % (targets // 4)
                changed = _project(n)[:2]
                sha = _digest(f"{tag}-upload-{k}")
                wheel = file_target(sha, f"project_{n}-9.{k}-py3-none-any.whl")
                changed.append(TargetFile(50_000, {"sha256": sha}, wheel))
                changed.append(TargetFile(900, {"sha256": _digest(wheel)}, wheel + ".metadata"))
                changed += [
                    TargetFile(9_600_000, {"sha256": _digest(f"{page}-{tag}{k}")}, page)
                    for page in ("simple/index.html", "simple/index.v1.json")
                ]
                started = time.perf_counter()
                repo.round(now, {t.path: t for t in changed})
                ms = (time.perf_counter() - started) * 1000
                snap = repo.snapshot().signed
                moved = [
                    f"{m.version}.{n}" for n, m in snap.meta.items() if before.get(n) != m.version
                ]
                raw, gz = _files(tuf, [f"{snap.version}.snapshot.json", *moved])
                stamp = (tuf / "timestamp.json").stat().st_size
                seen.append((raw + stamp, gz + stamp, ms))
            print(
                f"  {tag}: refresh after one upload median {statistics.median(s[0] for s in seen):,.0f}"
                f" bytes, gzip {statistics.median(s[1] for s in seen):,.0f}; signing round median"
                f" {statistics.median(s[2] for s in seen):.0f} ms"
            )

        refresh_bytes(f"{1 << bits} bins")
        keys = rebin(keys, trust, now, None, to_bits)
        repo = IndexRepository(tree, "main", keys, trust)
        started = time.perf_counter()
        repo.round(now)
        print(f"re-cut to {1 << to_bits} bins (one round): {time.perf_counter() - started:.1f} s")
        refresh_bytes(f"{1 << to_bits} bins")


if __name__ == "__main__":
    import sys

    if "--real" in sys.argv:
        parser = argparse.ArgumentParser()
        parser.add_argument("--real", action="store_true")
        parser.add_argument("--targets", type=int, default=400_000)
        parser.add_argument("--bits", type=int, default=10)
        parser.add_argument("--to-bits", type=int, default=12)
        parser.add_argument("--uploads", type=int, default=5)
        args = parser.parse_args()
        real(args.targets, args.bits, args.to_bits, args.uploads)
    else:
        main()
