"""Import time and peak memory of an OSV export the size of PyPI's (``tilsit vuln import``).

Generates ``--records`` records (default 20,000, about the size of osv.dev's PyPI/all.zip)
in the real format into an ``all.zip``, opens a fresh data directory (SQLite unless
``--database-url``), and measures, in one run:

1. the first import (every record new), its wall time and the process's peak RSS growth;
2. a re-import of the same file (nothing newer: the scan alone);
3. an import of the next export, with ``--changed`` percent of the records newer.

Peak memory is compared with the export's inflated size: the import streams the archive
member by member, so the ratio stays well below 1 whatever the export's size.

    .venv/bin/python bench/osv_import.py [--records 20000] [--changed 1] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from tilsit.config import load_settings
from tilsit.index.vulns import import_osv, scan_export
from tilsit.instance import open_instance


def record(i: int, modified: str, rng: random.Random) -> dict[str, object]:
    name = f"project-{rng.randrange(6000):05d}"
    fixed = f"{rng.randrange(1, 9)}.{rng.randrange(20)}.{rng.randrange(10)}"
    affected: list[dict[str, object]] = [
        {
            "package": {"ecosystem": "PyPI", "name": name, "purl": f"pkg:pypi/{name}"},
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]},
                {
                    "type": "GIT",
                    "repo": f"https://example.org/{name}",
                    "events": [{"introduced": "0"}, {"fixed": f"{i:040x}"}],
                },
            ],
            # Real PYSEC records list every affected release explicitly.
            "versions": [f"0.{v}" for v in range(rng.randrange(40))],
        }
    ]
    kind = rng.random()
    prefix = "MAL" if kind < 0.3 else "GHSA" if kind < 0.6 else "PYSEC"
    data: dict[str, object] = {
        "schema_version": "1.6.0",
        "id": f"{prefix}-2024-{i}",
        "modified": modified,
        "published": "2024-01-01T00:00:00Z",
        "aliases": [f"CVE-2024-{i}"],
        "summary": f"Issue {i} in {name}",
        "details": "A description of the vulnerability. " * rng.randrange(5, 60),
        "affected": affected,
        "references": [{"type": "WEB", "url": f"https://example.org/advisory/{i}"}],
    }
    if prefix == "GHSA":
        data["severity"] = [
            {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
        ]
        data["database_specific"] = {"severity": "HIGH", "cwe_ids": ["CWE-79"]}
    return data


def write_export(path: Path, records: int, changed: float, seed: int) -> int:
    """Write an export; ``changed``: the fraction whose ``modified`` is newer. Returns
    its inflated size."""
    rng = random.Random(seed)
    bump = random.Random(seed + 1)
    size = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(records):
            modified = "2024-06-01T00:00:00Z"
            if bump.random() < changed:
                modified = "2024-07-01T00:00:00Z"
            data = json.dumps(record(i, modified, rng), indent=2).encode()
            size += len(data)
            archive.writestr(f"{i}.json", data)
    return size


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def timed_import(instance: object, path: Path) -> tuple[float, int, str]:
    before = peak_rss()
    start = time.perf_counter()
    export = scan_export(path)
    with instance.db.write() as session:  # type: ignore[attr-defined]
        result = import_osv(session, export, actor="bench")
    elapsed = time.perf_counter() - start
    summary = f"{result.added} new, {result.updated} updated, {result.unchanged} unchanged"
    return elapsed, max(0, peak_rss() - before), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument(
        "--changed", type=float, default=1.0, help="percent newer in the second export"
    )
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        first = root / "all.zip"
        inflated = write_export(first, args.records, 0.0, seed=1)
        zipped = first.stat().st_size
        second = root / "next.zip"
        write_export(second, args.records, args.changed / 100, seed=1)
        settings = load_settings(
            overrides={"data": root / "data", "database_url": args.database_url}, environ={}
        )
        instance = open_instance(settings)
        try:
            rows = [
                ("first import", *timed_import(instance, first)),
                ("re-import (no change)", *timed_import(instance, first)),
                (f"next export ({args.changed:g}% newer)", *timed_import(instance, second)),
            ]
        finally:
            instance.close()
    load = os.getloadavg()
    print(
        f"{args.records} records, {zipped / 2**20:.1f} MiB zip,"
        f" {inflated / 2**20:.1f} MiB inflated; load average {load[0]:.2f} {load[1]:.2f}"
    )
    base = rows[0][1]
    for label, seconds, rss, summary in rows:
        print(
            f"  {label:28} {seconds:7.2f} s ({seconds / base:5.2f}x the first)"
            f"  peak RSS +{rss / 2**20:6.1f} MiB ({rss / inflated:4.2f}x the inflated export)"
            f"  {summary}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
