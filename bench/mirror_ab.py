"""Mirror sync, A/B: tilsit source trees against each other and bandersnatch, in one run.

    PYTHONPATH= .venv/bin/python bench/mirror_ab.py before=/path/a/src,after=/path/b/src [--rounds 3]

mirror.py's upstream (the same corpus over TLS, 2 workers) is loaded once; then each
round runs one full sync (3 workers, a fresh data directory) of every tilsit variant
(``PYTHONPATH`` set to its ``src``) and of bandersnatch, rotating which goes first.
Prints each run's wall time and, for tilsit, the CPU time of the sync process (user +
system, less sensitive than wall time to a shared machine) and the seconds its summary
states; then medians and the bandersnatch/tilsit ratio of each variant. The upstream
runs the first variant's source.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import mirror as m  # bench/ is sys.path[0] when run as a script


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", help="name=src,name=src,...")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    variants = dict(v.split("=", 1) for v in args.variants.split(","))
    first = next(iter(variants.values()))
    work = Path(tempfile.mkdtemp(prefix="tilsit-bench-ab-"))
    try:
        m.bytecode_cache()
        tls = m.make_tls(work / "tls")
        os.environ["SSL_CERT_FILE"] = str(tls.ca)
        os.environ["PYTHONPATH"] = first
        upstream_data = work / "upstream"
        m.tilsit_cli(upstream_data, "init")
        m.tilsit_cli(upstream_data, "user", "create", "bench", "--admin")
        token = m.tilsit_cli(upstream_data, "token", "create", "--user", "bench")
        bandersnatch = m.find_bandersnatch()
        wall: dict[str, list[float]] = {name: [] for name in [*variants, "bandersnatch"]}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        with m.tilsit_serve(upstream_data, work / "upstream.log", workers=2, tls=tls) as url:
            upstream = m.Upstream(url, work / "upstream.log")
            m.upload_all(url, token, m.real_wheels(120))
            order = list(wall)
            for run in range(args.rounds):
                for tool in order[run % len(order) :] + order[: run % len(order)]:
                    target = work / f"{tool}-{run}"
                    load = os.getloadavg()[0]
                    if tool == "bandersnatch":
                        full, _noop = m.bandersnatch_sync(
                            target, bandersnatch, upstream, tls, args.workers
                        )
                        wall[tool].append(full.seconds)
                        print(f"{tool:<13} {full.seconds:6.2f} s  load {load:.1f}", flush=True)
                    else:
                        os.environ["PYTHONPATH"] = variants[tool]
                        m.tilsit_cli(target, "init")
                        m.tilsit_cli(
                            target, "index", "create", "mirror", "--mirror", upstream.simple,
                            "--ca-bundle", str(tls.ca),
                        )  # fmt: skip
                        command = [sys.executable, "-m", "tilsit", "mirror", "sync", "mirror"]
                        command += ["--no-progress", "--workers", str(args.workers)]
                        command += ["--data", str(target)]
                        before = _children_cpu()
                        seconds, result = m.timed_run(command, {**os.environ, **m.LOCAL}, 1800)
                        if result.returncode != 0:
                            raise m._failed("tilsit mirror sync", result)
                        used = _children_cpu() - before
                        summary = m._SUMMARY.search(result.stdout)
                        stated = float(summary["seconds"]) if summary else float("nan")
                        wall[tool].append(seconds)
                        cpu[tool].append(used)
                        print(
                            f"{tool:<13} {seconds:6.2f} s  cpu {used:5.2f} s"
                            f"  (sync says {stated:.2f} s)  load {load:.1f}",
                            flush=True,
                        )
                        os.environ["PYTHONPATH"] = first
                    shutil.rmtree(target, ignore_errors=True)
        reference = statistics.median(wall["bandersnatch"])
        print(f"\nbandersnatch  median {reference:6.2f} s")
        for name in variants:
            median = statistics.median(wall[name])
            print(
                f"{name:<13} median {median:6.2f} s  cpu {statistics.median(cpu[name]):5.2f} s"
                f"  b/t {reference / median:.2f}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
