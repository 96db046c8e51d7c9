"""tuf-conformance's client-under-test CLI protocol (CLIENT-CLI.md) for python-tuf's ngclient.

    python conformance_cli.py --metadata-dir D init ROOT
    python conformance_cli.py --metadata-dir D --metadata-url U refresh
    python conformance_cli.py --metadata-dir D --metadata-url U --target-name P \\
        --target-base-url T --target-dir X download

Exit 0 on success, 1 on any failure; D holds the metadata under unversioned names.
It drives ngclient directly (not through ``tilsit verify``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tuf.ngclient import Updater


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metadata-dir", required=True, type=Path)
    parser.add_argument("--metadata-url")
    parser.add_argument("--target-name")
    parser.add_argument("--target-base-url")
    parser.add_argument("--target-dir", type=Path)
    parser.add_argument("command", choices=["init", "refresh", "download"])
    parser.add_argument("root", nargs="?", type=Path)
    args = parser.parse_args(argv)
    if args.command == "init":
        args.metadata_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.root, args.metadata_dir / "root.json")
        return 0
    try:
        updater = Updater(
            metadata_dir=str(args.metadata_dir),
            metadata_base_url=args.metadata_url,
            target_dir=str(args.target_dir) if args.target_dir else None,
            target_base_url=args.target_base_url,
            bootstrap=None,  # the protocol's init step left the trusted root.json in D
        )
        updater.refresh()
        if args.command == "download":
            info = updater.get_targetinfo(args.target_name)
            if info is None:
                print(f"FAIL not a signed target: {args.target_name}")
                return 1
            if updater.find_cached_target(info) is None:
                updater.download_target(info)
    except Exception as exc:  # noqa: BLE001 - the protocol reports any failure as exit 1
        print(f"FAIL {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
