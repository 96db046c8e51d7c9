"""Time a full ``tilsit verify`` of a real corpus: over tilsit's own server, over nginx
serving the same tree, and over the tree directory, in one run.

    .venv/bin/python bench/tuf_verify.py [--projects 120] [--generated]

The corpus and the servers are readpath.py's: real wheels from /opt/pypi/files (one per
project) uploaded through ``POST /legacy/`` of a real ``tilsit serve``, then nginx with
``tilsit nginx-config`` over the same tree. Each verify starts from the pinned
``1.root.json`` with no saved state (``--fresh``) and checks every target under its
hashed and its plain name. Prints a table (ratios: tilsit/nginx) and writes
bench/results/tuf-verify-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# bench scripts are not a package: readpath.py is imported from this directory.
from servers import tilsit_cli

from readpath import (
    REAL_WHEELS,
    generated_wheels,
    nginx_server,
    real_wheels,
    tilsit_server,
    upload_all,
)

RESULTS = Path(__file__).parent / "results"


def verify(source: str, root: Path, *extra: str) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tilsit",
            "verify",
            source,
            "--root",
            str(root),
            "--fresh",
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(
            f"verify {source} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return elapsed, json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=120)
    parser.add_argument(
        "--generated", action="store_true", help="generated wheels, not /opt/pypi/files"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tilsit-bench-tuf-") as scratch:
        work = Path(scratch)
        data = work / "data"
        use_real = REAL_WHEELS.is_dir() and not args.generated
        wheels = real_wheels(args.projects) if use_real else generated_wheels(args.projects, work)
        tilsit_cli(data, "init")  # other commands need a data directory
        tilsit_cli(data, "user", "create", "bench")
        token = tilsit_cli(data, "token", "create", "--user", "bench").split()[-1]
        root = data / "tree" / "main" / "tuf" / "1.root.json"
        figures: dict[str, object] = {}
        with tilsit_server(data, 1, work / "tilsit.log") as (url, _pid):
            started = time.perf_counter()
            stored, refused = upload_all(url, token, wheels)
            figures["upload_s"] = round(time.perf_counter() - started, 2)
            size = sum(w.size for w in stored)
            tilsit_s, report = verify(f"{url}/main/", root)
            with nginx_server(
                data / "tree", url.removeprefix("http://"), work / "nginx", "auto"
            ) as nginx:
                nginx_s, _ = verify(f"{nginx}/main/", root)
        dir_s, _ = verify(str(data / "tree"), root, "--index", "main")
        figures.update(
            {
                "corpus": "real" if use_real else "generated",
                "files": len(stored),
                "refused": refused,
                "bytes": size,
                "report_summary": {k: v for k, v in report.items() if not isinstance(v, list)},
                "verify_tilsit_s": round(tilsit_s, 2),
                "verify_nginx_s": round(nginx_s, 2),
                "verify_dir_s": round(dir_s, 2),
                "ratio_tilsit_nginx": round(tilsit_s / nginx_s, 2),
            }
        )
        shutil.rmtree(work / "nginx", ignore_errors=True)
    print(
        f"corpus: {len(stored)} wheels, {size / 1e6:.1f} MB ({figures['corpus']}); uploads {figures['upload_s']} s"
    )
    print("| full tilsit verify | seconds |")
    print("|---|---|")
    print(f"| over tilsit serve | {tilsit_s:.1f} |")
    print(f"| over nginx (same tree) | {nginx_s:.1f} |")
    print(f"| over the tree directory | {dir_s:.1f} |")
    print(f"| ratio tilsit / nginx | {tilsit_s / nginx_s:.2f} |")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"tuf-verify-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(figures, indent=2, default=str))
    print(f"written {out}")


if __name__ == "__main__":
    main()
