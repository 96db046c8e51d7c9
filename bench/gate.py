"""What the private-index gate costs nginx: ``auth_request`` on every read.

    .venv/bin/python bench/gate.py [--projects N] [--duration S]

Every nginx location that serves the tree carries ``auth_request``: for a public
index the check is an internal subrequest answered from one ``stat`` of the
index's ``.private`` marker; for a private index it is a proxied request to
tilsit's ``/_/auth/<index>`` (answered from tilsit's 30 s access cache). This
measures, in one run and with wrk at the same concurrency:

- a public JSON page and a public file through nginx as generated (gated) and
  through the same config with the gate lines removed (ungated): the price every
  public read pays;
- a private index's JSON page and file through nginx (gated, with a read token)
  and through tilsit itself: the price of a private read.

Results go to stdout as a table and to bench/results/gate-<stamp>.json. Everything
talks to 127.0.0.1 only; each wrk run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from servers import tilsit_cli

from readpath import (
    PIP_ACCEPT,
    ROOT,
    check_target,
    generated_wheels,
    nginx_server,
    tilsit_server,
    upload_all,
    wrk,
)
from tilsit.nginx import PERL_MODULE

PRIVATE = "sec"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
# The gate in the generated config (tilsit.nginx.config._AUTH): the subrequest and its
# error pages. The .private test stays: it also chooses public or private caching.
_GATE_LINES = re.compile(r"^\s*(auth_request\s|error_page\s+40[13]\s)")


def ungated(config: str) -> str:
    """The same config without ``auth_request``: what nginx would cost with no gate."""
    kept = [line for line in config.splitlines() if not _GATE_LINES.match(line)]
    if len(kept) == len(config.splitlines()):
        raise SystemExit("found no gate lines to remove: has tilsit.nginx changed?")
    return "\n".join(kept) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=40, help="projects in the public index")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH (Debian: apt-get install {tool})")
    if not PERL_MODULE.exists():
        raise SystemExit("nginx's Perl module is missing (apt-get install libnginx-mod-http-perl)")
    work = Path(tempfile.mkdtemp(prefix="tilsit-gate-"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        data = work / "data"
        (work / "wheels").mkdir()
        wheels = generated_wheels(args.projects, work / "wheels")
        tilsit_cli(data, "init")  # other commands need a data directory
        tilsit_cli(data, "user", "create", "bench", "--admin")
        token = tilsit_cli(data, "token", "create", "--user", "bench")
        tilsit_cli(data, "index", "create", PRIVATE, "--private")
        tilsit_cli(data, "user", "create", "reader")
        tilsit_cli(data, "index", "grant", PRIVATE, "reader", "read")
        reader = tilsit_cli(data, "token", "create", "--user", "reader")
        # A small wheel (not the 1 MiB one) is the file measured on both sides.
        small = wheels[1]
        with tilsit_server(data, 1, work / "load.log") as (url, _pid):
            _stored, refused = upload_all(url, token, wheels)
            if refused:
                raise SystemExit("\n".join(refused))
            _stored, refused = upload_all(url, token, wheels[1:6], f"/{PRIVATE}/legacy/")
            if refused:
                raise SystemExit("\n".join(refused))
        public_file = "/" + str(
            next((data / "tree" / "packages").rglob(small.path.name)).relative_to(data / "tree")
        )
        private_file = "/" + str(
            next((data / "tree" / PRIVATE / "packages").rglob(small.path.name)).relative_to(
                data / "tree"
            )
        )
        page = small.name.replace("_", "-")
        bearer = {"Authorization": f"Bearer {reader}"}
        targets: dict[str, tuple[str, dict[str, str], str]] = {
            "public json page": (f"/simple/{page}/", {"Accept": PIP_ACCEPT}, JSON_TYPE),
            "public file": (public_file, {}, "application/octet-stream"),
            "private json page": (
                f"/{PRIVATE}/simple/{page}/",
                {"Accept": PIP_ACCEPT, **bearer},
                JSON_TYPE,
            ),
            "private file": (private_file, bearer, "application/octet-stream"),
        }
        results: dict[str, dict[str, object]] = {}
        with ExitStack() as stack:
            tilsit, _pid = stack.enter_context(tilsit_server(data, 1, work / "tilsit.log"))
            gated = stack.enter_context(
                nginx_server(data / "tree", tilsit, work / "nginx-gated", "1")
            )
            plain = stack.enter_context(
                nginx_server(data / "tree", tilsit, work / "nginx-ungated", "1", ungated)
            )
            # Without a token the gated nginx refuses the private page: the gate is on.
            refused_anon = httpx.get(f"{gated}/{PRIVATE}/simple/{page}/", timeout=30)
            if refused_anon.status_code != 401:
                raise SystemExit(f"the gate let an anonymous read through: {refused_anon}")
            servers = {
                "public json page": {"nginx gated": gated, "nginx ungated": plain},
                "public file": {"nginx gated": gated, "nginx ungated": plain},
                "private json page": {"nginx gated": gated, "tilsit": tilsit},
                "private file": {"nginx gated": gated, "tilsit": tilsit},
            }
            for target, (path, headers, content_type) in targets.items():
                results[target] = {}
                for server, url in servers[target].items():
                    check_target(url + path, headers, content_type)
                    wrk(url + path, headers, argparse.Namespace(**{**vars(args), "duration": 2}))
                    load = wrk(url + path, headers, args)
                    results[target][server] = asdict(load)
                    print(f"  {target:<18} {server:<14} {load}", flush=True)
        lines = [
            f"{'measure':<20}{'server A':>16}{'req/s':>10}{'server B':>16}{'req/s':>10}{'A/B':>7}"
        ]
        for target, by_server in results.items():
            (name_a, a), (name_b, b) = list(by_server.items())
            ra, rb = float(a["requests_per_s"]), float(b["requests_per_s"])  # type: ignore[arg-type]
            lines.append(
                f"{target:<20}{name_a:>16}{ra:>10.0f}{name_b:>16}{rb:>10.0f}{ra / rb:>7.2f}"
            )
        table = "\n".join(lines)
        print("\n" + table)
        out = ROOT / "bench" / "results" / f"gate-{stamp}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "started": stamp,
                    "cpus": os.cpu_count(),
                    "settings": vars(args),
                    "results": results,
                    "table": table.splitlines(),
                },
                indent=2,
            )
        )
        print(f"\nresults: {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
