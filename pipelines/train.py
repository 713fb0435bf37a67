"""DVC stage `train`: params `data`, `model`, `train` + prepared splits -> models/model.pt, plots/ (training side)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import params as P
from pipelines import tracking as T
from ssgan.driver import launch

OUTPUTS = launch.TrainOutputs(model=Path("models/model.pt"), history=Path("plots/train.csv"),
                              samples=Path("plots/samples.png"), curves=Path("plots/curves.png"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=P.DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"), help="prepared splits (default: %(default)s)")
    parser.add_argument("--reference", type=Path, default=Path("models/reference.pt"),
                        help="reference classifier for fid_classifier_val during training (default: %(default)s)")
    parser.add_argument("--restart", action="store_true",
                        help="start fresh instead of resuming an interrupted run of the same configuration")


def run(args: argparse.Namespace) -> None:
    cfg = P.load_config(args.params, ("data", "model", "train", "quality"))
    root = P.project_root()
    result = launch.train(cfg, args.data, OUTPUTS, T.tracking_uri(root), T.artifact_root(root), P.cluster(root),
                          restart=args.restart, reference=args.reference, lineage=P.git_lineage(root),
                          code=P.train_code_digest(root))
    print(f"[ssgan] trained ({cfg.train.mode}): best val_accuracy {result['val_accuracy']:.4f} at epoch "
          f"{result['best_epoch']}; model {OUTPUTS.model}; MLflow run {result['run_id']}")


if __name__ == "__main__":
    from pipelines.cli import main

    main(["train", *sys.argv[1:]])
