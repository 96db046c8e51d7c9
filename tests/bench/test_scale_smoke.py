"""bench/scale.py at a tiny size: it loads, serves, uploads, measures and reports.

The figures are only sanity-checked (each is there and plausible); what they are at
size is for the benchmark itself (bench/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scale_bench_reports_every_figure(tmp_path: Path) -> None:
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILSIT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench" / "scale.py"), "--sizes", "20"),
            *("--uploads", "3", "--versions", "5", "--version-uploads", "2", "--reads", "30"),
            *("--work", str(tmp_path / "work"), "--results", str(results)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    # The table: its header and one row for N=20, and the ratios.
    lines = run.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["N", "new", "p50"])
    row = lines[header + 1].split()
    assert row[0] == "20"
    assert all(float(cell) > 0 for cell in row[1:5]), row  # four latencies in ms
    assert "new version, 5 versions / 3 files:" in run.stdout

    (out,) = results.glob("scale-*.json")
    document = json.loads(out.read_text())
    assert document["finished"] is True
    (size,) = document["sizes"]
    assert size["projects"] == 20
    assert size["load"]["uploads"] == 20
    assert len(size["new_project"]) == len(size["new_version"]) == 3
    summary = size["summary"]
    # Every upload took time, wrote bytes (blobs, pages, TUF metadata, the database)
    # and grew the tree; the root page gained a hashed copy per new project.
    assert all(u["ms"] > 0 and u["wchar"] > 0 for u in size["new_project"])
    assert summary["write_bytes_per_upload"] > 10_000
    assert summary["du_growth_per_upload"] > 0
    assert summary["hashed_root_growth_per_upload"] > 0
    assert size["hashed_root_page_bytes"] > 0
    # A returning TUF client fetches at least the timestamp, a snapshot and one bin.
    tuf = size["tuf_refresh"]
    assert tuf["timestamp"] > 0 and tuf["snapshot"] > 0 and tuf["changed_roles"] >= 1
    assert tuf["total"] == tuf["timestamp"] + tuf["snapshot"] + tuf["roles"]
    assert tuf["decoded_total"] >= tuf["total"]  # on the wire, compressed where large
    assert 20 < summary["rss_mb"] < 2000
    # Thirty pages of loaded projects were read (each checked 200), then the RSS again.
    assert size["reads"] == 30 and summary["read_ms_median"] > 0
    assert 20 < summary["rss_after_reads_mb"] < 2000

    versions = document["versions"]
    assert versions["versions"] == 5
    assert versions["load"]["uploads"] == 5 * 2 + 3
    assert len(versions["many"]) == len(versions["few"]) == 2
    assert versions["summary"]["ratio"] > 0
