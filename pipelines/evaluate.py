"""DVC stage `evaluate`: params `evaluate` + models/model.pt + test split -> metrics.json, plots/confusion.csv."""
from __future__ import annotations

import argparse
from pathlib import Path

from pipelines import params as P
from ssgan.evaluate import evaluate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=P.DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"), help="model file (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"), help="prepared splits (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    cfg = P.load_config(args.params, ("evaluate",))
    results = evaluate(cfg.evaluate, args.model, args.data, args.model.parent / "mlflow_run.json",
                       Path("metrics.json"), Path("plots/confusion.csv"), Path("plots/confusion.png"),
                       P.tracking_uri(Path.cwd()))
    print(f"[ssgan] test_accuracy {results['test_accuracy']:.4f} (test_error {results['test_error']:.4f}) "
          f"for the model selected on val at epoch {results['best_epoch']}; written to metrics.json")


if __name__ == "__main__":
    from pipelines.cli import main

    main(["evaluate"])
