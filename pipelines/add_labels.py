"""`ssgan add-labels LABELS.csv`: an annotator's `row_id,label` rows join data.extra_labels, so the next
`dvc repro` moves those images from the unlabeled to the labeled split (the original splits stay
reproducible: the file is a DVC dependency of prepare, and an empty one changes nothing)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import params as P
from ssgan.active.add_labels import check_new_labels, merged_labels_csv, read_labels_csv
from ssgan.config import ConfigError
from ssgan.data.parquet import describe
from ssgan.util.fileio import atomic_write


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labels", type=Path, help="CSV with the columns row_id,label (row_id from suggest/to_label.parquet)")
    parser.add_argument("--params", default=P.DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"), help="prepared splits (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    data = P.load_config(args.params, ("data",)).data
    if data.extra_labels is None:
        raise ConfigError("data.extra_labels: null; set it to a file (e.g. data/extra_labels.csv) in params.yaml")
    target = Path(data.extra_labels)
    rows, labels = read_labels_csv(args.labels)
    num_classes = describe(args.data / "labeled.parquet")[0]["num_classes"]
    check_new_labels(args.data, target, rows, labels, num_classes)
    atomic_write(target, merged_labels_csv(target, rows, labels))
    print(f"[ssgan] added {len(rows)} labels to {target}; `dvc repro` moves them from unlabeled to labeled and retrains")


if __name__ == "__main__":
    from pipelines.cli import main

    main(["add-labels", *sys.argv[1:]])
