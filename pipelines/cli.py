"""`ssgan <stage>`: the command line. Errors print one line and exit non-zero."""
from __future__ import annotations

import argparse
import os
import sys

from pipelines import add_labels, curve, evaluate, fid, predict, prepare, promote, reference, sample, suggest, train, tune
from ssgan.training.checkpoint import ModelFileError
from ssgan.config import ConfigError
from ssgan.data.catalog import DataSourceError
from ssgan.data.parquet import PreparedDataError
from ssgan.data.splits import SplitError
from ssgan.driver.cluster import ClusterError
from ssgan.tracking.promote import PromotionError
from ssgan.tracking.server import TrackingError
from ssgan.driver.resume import CheckpointMismatchError
from ssgan.sweep.tuner import SweepError
from ssgan.util.names import UnsafeNameError
from ssgan.util.redact import redact_text

# Errors caused by input the user can fix: shown as one line. Anything else is a bug: full traceback.
USER_ERRORS = (ConfigError, DataSourceError, PreparedDataError, SplitError, ClusterError, ModelFileError,
               CheckpointMismatchError, SweepError, PromotionError, UnsafeNameError, TrackingError, FileNotFoundError)

STAGES = {
    "prepare": (prepare, "write seeded labeled/unlabeled/val/test Parquet splits (params: data)"),
    "reference": (reference, "train the reference classifier of generation-quality metrics on all train-pool labels "
                             "(params: data, quality) -> models/reference.pt"),
    "train": (train, "train the semi-supervised GAN with Ray Train, log to MLflow (params: data, model, train)"),
    "evaluate": (evaluate, "test metrics of the model selected on val -> metrics.json and MLflow (params: evaluate)"),
    "promote": (promote, "registry: alias champion (or challenger) for the run that wrote models/model.pt, by val error"),
    "predict": (predict, "classify images (files, a folder or a Parquet file) with a registered or local model"),
    "sample": (sample, "draw images from a generator (registered or models/model.pt) into a grid PNG or Parquet"),
    "curve": (curve, "test error against labels per class, SSGAN and supervised over seeds, each run on Ray "
                     "-> plots/label_curve.csv/.png (params: data, model, train, curve)"),
    "suggest": (suggest, "rank the unlabeled images to label next (entropy, margin or D's fake probability)"),
    "add-labels": (add_labels, "add an annotator's row_id,label CSV to data.extra_labels for the next dvc repro"),
    "fid": (fid, "Fréchet distance between two image sets (Parquet split, image folder, model file or MLflow URI)"),
    "tune": (tune, "hyperparameter sweep on Ray Tune, each trial a Ray Train run -> tune/best.yaml, tune/trials.csv "
                   "and nested MLflow runs (params: data, model, train, tune)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssgan", description="Semi-supervised GANs with Ray Train, MLflow and DVC. "
                                     "Run the whole pipeline with `dvc repro`; each stage is also a subcommand.")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="{" + ",".join(STAGES) + "}")
    for name, (module, help_text) in STAGES.items():
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _root_cause(err: BaseException) -> BaseException:
    """Ray wraps a worker's exception (sometimes twice); show the user the original."""
    seen = {id(err)}
    while True:
        inner = getattr(err, "cause", None) or err.__cause__
        if isinstance(getattr(err, "worker_failures", None), dict) and err.worker_failures:
            inner = next(iter(err.worker_failures.values()))
        if inner is None or id(inner) in seen:
            return err
        seen.add(id(inner))
        err = inner


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    module, _ = STAGES[args.stage]
    # MLflow draws a progress bar on stderr for each file it downloads (an MLflow model's payload);
    # stderr is for ssgan's own lines, an error being exactly one.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        module.run(args)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:
        cause = _root_cause(err)
        if not isinstance(cause, USER_ERRORS):
            raise
        message = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
        message = redact_text(message)  # a tracking or storage URI in it may carry credentials
        print(f"ssgan {args.stage}: error: {message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
