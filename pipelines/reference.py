"""DVC stage `reference`: params `data`, `quality` + prepared splits -> models/reference.pt, the reference
classifier that generation-quality metrics (fid_classifier_val, fid_classifier_test, kid_classifier_test, is_classifier) use."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import params as P
from ssgan.training.checkpoint import payload_bytes
from ssgan.util.fileio import atomic_write
from ssgan.data.parquet import check_prepared
from ssgan.quality.reference import load_or_build

OUTPUT = Path("models/reference.pt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=P.DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"), help="prepared splits (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUTPUT, help="where to write it (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    cfg = P.load_config(args.params, ("data", "quality"))
    data = P.data_config(args.params)
    check_prepared(args.data)
    payload = load_or_build(data, args.data, Path(data.cache_dir), cfg.quality.reference_epochs)
    atomic_write(args.out, payload_bytes(payload))
    print(f"[ssgan] reference classifier: test accuracy {payload['test_accuracy']:.4f} on its "
          f"{payload['train_images']} train-pool images; {args.out}")


if __name__ == "__main__":
    from pipelines.cli import main

    main(["reference", *sys.argv[1:]])
