"""DVC stage `evaluate`: params `evaluate` + models/model.pt + test split -> metrics.json, plots/ (test side)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import params as P
from pipelines import tracking as T
from ssgan.quality.evaluate import EvaluateOutputs, evaluate
from ssgan.quality.measures import QUALITY_METRICS

OUTPUTS = EvaluateOutputs(metrics=Path("metrics.json"), per_class=Path("plots/test_accuracy_class.csv"),
                          confusion=Path("plots/confusion.csv"), confusion_image=Path("plots/confusion.png"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=P.DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"), help="model file (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"), help="prepared splits (default: %(default)s)")
    parser.add_argument("--reference", type=Path, default=Path("models/reference.pt"),
                        help="reference classifier of fid_classifier_test, kid_classifier_test, is_classifier (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    cfg = P.load_config(args.params, ("evaluate", "quality"))
    reference = args.reference if args.reference.exists() else None
    if reference is None:
        print(f"[ssgan] no reference classifier at {args.reference}: no fid_classifier_test (`ssgan reference` makes one)")
    weights = None
    if cfg.quality.inception:
        from ssgan.quality.inception import resolve_weights

        weights = resolve_weights(cfg.quality.inception_weights, Path(P.data_config(args.params).cache_dir))
    results = evaluate(cfg.evaluate, args.model, args.data, OUTPUTS, T.tracking_uri(P.project_root()),
                       cfg.quality, reference, weights)
    where = f" and MLflow run {results['run_id']}" if results["run_id"] else ""
    quality = "".join(f"{k} {results[k]:.4f}; " for k in QUALITY_METRICS if k in results)
    print(f"[ssgan] test_accuracy {results['test_accuracy']:.4f} (test_error {results['test_error']:.4f}) "
          f"for the model selected on val at epoch {results['best_epoch']}; {quality}written to {OUTPUTS.metrics}{where}")


if __name__ == "__main__":
    from pipelines.cli import main

    main(["evaluate", *sys.argv[1:]])
