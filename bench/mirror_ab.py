"""Mirror sync, A/B: tilsit source trees against each other and bandersnatch, in one run.

    PYTHONPATH= .venv/bin/python bench/mirror_ab.py before=/path/a/src,after=/path/b/src [--rounds 3]

mirror.py's upstream (the same corpus over TLS, 2 workers) is loaded once; then each
round runs one full sync (3 workers, a fresh data directory) of every tilsit variant
(``PYTHONPATH`` set to its ``src``) and of bandersnatch, rotating which goes first.
Prints each run's wall time and, for tilsit, the CPU time of the sync process (user +
system, less sensitive than wall time to a shared machine) and the seconds its summary
states; then medians and the bandersnatch/tilsit ratio of each variant. The upstream
runs the first variant's source.

The variant ``curl`` (no source: ``curl=``) is the floor of any sync from this upstream:
curl (C, OpenSSL) fetching every page and file a sync fetches, ``--workers`` at a time
over kept-alive connections, into a fresh directory, with no hashing, no fsync and no
bookkeeping. Its list of URLs is read from the upstream once, before anything is timed.
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

import httpx
import mirror as m  # bench/ is sys.path[0] when run as a script

JSON_ACCEPT = {"Accept": "application/vnd.pypi.simple.v1+json"}


def sync_urls(simple: str, ca: Path) -> list[str]:
    """Every URL a full sync fetches: the project list, each project page, each file."""
    urls = [simple]
    with httpx.Client(verify=str(ca), headers=JSON_ACCEPT, timeout=60) as client:
        listing = client.get(simple).raise_for_status().json()
        for project in listing["projects"]:
            page_url = f"{simple}{project['name']}/"
            urls.append(page_url)
            page = client.get(page_url).raise_for_status().json()
            urls += [str(httpx.URL(page_url).join(f["url"])) for f in page["files"]]
    return urls


def curl_floor(urls: list[str], target: Path, ca: Path, workers: int) -> float:
    """curl fetching ``urls``, ``workers`` at a time; the wall seconds."""
    target.mkdir(parents=True)
    config = target.parent / f"{target.name}.curl"
    config.write_text(
        "".join(f'url = "{u}"\noutput = "{target}/{i}"\n' for i, u in enumerate(urls))
    )
    command = ["curl", "--silent", "--show-error", "--fail", "--parallel"]
    command += ["--parallel-max", str(workers), "--cacert", str(ca), "--config", str(config)]
    seconds, result = m.timed_run(command, {**os.environ, **m.LOCAL}, 600)
    if result.returncode != 0:
        raise m._failed("curl", result)
    config.unlink()
    return seconds


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
            urls = sync_urls(upstream.simple, tls.ca) if "curl" in variants else []
            order = list(wall)
            for run in range(args.rounds):
                for tool in order[run % len(order) :] + order[: run % len(order)]:
                    target = work / f"{tool}-{run}"
                    load = os.getloadavg()[0]
                    if tool == "curl":
                        seconds = curl_floor(urls, target, tls.ca, args.workers)
                        wall[tool].append(seconds)
                        print(f"{tool:<13} {seconds:6.2f} s  ({len(urls)} URLs)  load {load:.1f}")
                    elif tool == "bandersnatch":
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
            used = f"cpu {statistics.median(cpu[name]):5.2f} s" if cpu[name] else " " * 12
            print(f"{name:<13} median {median:6.2f} s  {used}  b/t {reference / median:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
