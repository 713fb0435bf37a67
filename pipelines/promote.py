"""DVC stage `promote` (after evaluate): the run that wrote models/model.pt -> registry aliases, promotion.json.

Its classifier version becomes `champion` when its val error is lower than the champion's for the
same data (ssgan.tracking.promote explains the scheme), else `challenger`; `--force` promotes regardless.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import params as P
from ssgan.util.fileio import atomic_write, json_bytes
from ssgan.tracking.promote import promote

OUTPUT = Path("promotion.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"), help="model file (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="make it champion whatever its val error (says so)")
    parser.add_argument("--out", type=Path, default=OUTPUT, help="the decision as JSON (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    if not args.model.exists():
        raise FileNotFoundError(f"{args.model}: no model file; run `dvc repro` (or `ssgan train`) first")
    result = promote(args.model, P.tracking_uri(P.project_root()), force=args.force)
    name, version, key = result.get("name", ""), result["version"], result["data_key"]
    if result["already"]:
        print(f"[ssgan] {name or 'the classifier'} version {version} is already the champion for {key}")
    elif result["promoted"]:
        how = "forced (--force), " if result["forced"] else ""
        print(f"[ssgan] promoted {name} version {version} to champion for {key}: {how}{result['reason']}")
    else:
        print(f"[ssgan] not promoted: {name} version {version} stays challenger for {key}: {result['reason']} "
              f"(champion: version {result['champion_version']})")
    atomic_write(args.out, json_bytes({k: v for k, v in result.items()}))


if __name__ == "__main__":
    from pipelines.cli import main

    main(["promote", *sys.argv[1:]])
