"""DVC stage `tune` (tune/dvc.yaml; not part of the default `dvc repro`): params `data`, `model`, `train`,
`tune` + prepared splits -> tune/best.yaml, tune/trials.csv, and a parent MLflow run with one child per trial."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import params as P
from pipelines import tracking as T
from ssgan.sweep import tune as sweep

OUTPUTS = sweep.SweepOutputs(best=Path("tune/best.yaml"), trials=Path("tune/trials.csv"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=P.DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"), help="prepared splits (default: %(default)s)")
    parser.add_argument("--name", default=None,
                        help="sweep name (default: sweep-<hash of the params, tune section and data>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted sweep of this name: finished trials are not rerun")


def run(args: argparse.Namespace) -> None:
    if args.name is not None:  # before anything is read: the name becomes a folder that is later deleted
        from ssgan.util.names import check_name

        check_name(args.name, "tune --name")
    params = P.load_params(args.params)
    P.load_config(args.params, ("data", "model", "train"))  # the same checks, and messages, as `ssgan train`
    root = P.project_root()
    sweep.sweep(params, args.data, OUTPUTS, T.tracking_uri(root), T.artifact_root(root), P.cluster(root),
                name=args.name, resume=args.resume)


if __name__ == "__main__":
    from pipelines.cli import main

    main(["tune", *sys.argv[1:]])
