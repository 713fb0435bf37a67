"""Taking an annotator's labels back (`ssgan add-labels`): check each new row against the splits,
and merge it into the extra-labels file that `prepare` reads (data.extra_labels)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ssgan.data.catalog import DataSourceError


def check_new_labels(data_dir: Path, existing: Path | None, rows: np.ndarray, labels: np.ndarray,
                     num_classes: int) -> None:
    """Every new row must be in the unlabeled split and not labeled already; labels in 0..K-1."""
    ids = pq.read_table(Path(data_dir) / "unlabeled.parquet", columns=["index"]).column("index").to_numpy()
    labeled = pq.read_table(Path(data_dir) / "labeled.parquet", columns=["index"]).column("index").to_numpy()
    done = set(labeled.tolist())
    if existing is not None and existing.exists():
        from ssgan.data.splits import read_extra_labels

        done |= set(read_extra_labels(str(existing), num_classes)[0].tolist())
    unlabeled = set(ids.tolist())  # once, not per annotator row
    for row, label in zip(rows.tolist(), labels.tolist()):
        if row in done:
            raise DataSourceError(f"row {row} is already labeled; drop it from the file")
        if row not in unlabeled:
            raise DataSourceError(f"row {row} is not a row of the unlabeled split (its `index` column); "
                                  f"use the row_id column of suggest/to_label.parquet")
        if not 0 <= label < num_classes:
            raise DataSourceError(f"row {row}: label {label} is outside 0..{num_classes - 1}")
    uniq, counts = np.unique(rows, return_counts=True)
    if (counts > 1).any():
        raise DataSourceError(f"row {uniq[counts > 1][0]} appears twice")


def read_labels_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from ssgan.data.splits import parse_labels_csv

    rows, labels = parse_labels_csv(str(path), "add-labels")
    if not len(rows):
        raise DataSourceError(f"{path}: no rows")
    return rows, labels


def merged_labels_csv(existing: Path | None, rows: np.ndarray, labels: np.ndarray) -> bytes:
    """The extra-labels file with the new rows appended (header row_id,label)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["row_id", "label"])
    if existing is not None and existing.exists():
        with open(existing, newline="", encoding="utf-8-sig") as f:
            for record in csv.DictReader(f):
                writer.writerow([record["row_id"], record["label"]])
    writer.writerows(zip(rows.tolist(), labels.tolist()))
    return buf.getvalue().encode()
