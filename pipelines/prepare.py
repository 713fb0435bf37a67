"""DVC stage `prepare`: params `data` -> data/prepared/{labeled,unlabeled,val,test}.parquet, summary.json, preview.png."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.params import DEFAULT_PARAMS, data_config
from ssgan.data.prepare import prepare

OUT_DIR = Path("data/prepared")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    data = data_config(args.params)
    summary = prepare(data, args.out)
    counts = ", ".join(f"{name} {s['total']}" for name, s in summary["splits"].items())
    print(f"[ssgan] prepared {data.source} in {args.out}: {counts}")


if __name__ == "__main__":
    from pipelines.cli import main

    main(["prepare", *sys.argv[1:]])
