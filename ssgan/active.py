"""What to label next: rank the unlabeled split by the classifier's uncertainty, and take an annotator's labels back.

Scores (higher = label it sooner), from D's K class logits l:
- `entropy`: of the K-class softmax;
- `margin`: 1 - (p1 - p2), the gap between the two most likely classes, turned so that small gaps rank first;
- `fake`: D's probability of the implicit (K+1)-th class, 1 / (1 + sum_k exp(l_k)): images the
  discriminator finds unlike the data (outliers, or kinds of image the labels do not cover).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from ssgan.data.catalog import DataSourceError

SCORES = ("entropy", "margin", "fake")


def uncertainty(logits: np.ndarray, score: str) -> np.ndarray:
    """Pure: one score per row of an (N, K) logit matrix."""
    logits = torch.as_tensor(np.asarray(logits, np.float64))
    log_p = torch.log_softmax(logits, dim=1)
    if score == "entropy":
        return (-(log_p.exp() * log_p).sum(dim=1)).numpy()
    if score == "margin":
        top2 = log_p.exp().topk(2, dim=1).values
        return (1.0 - (top2[:, 0] - top2[:, 1])).numpy()
    if score == "fake":
        return torch.sigmoid(-torch.logsumexp(logits, dim=1)).numpy()
    raise ValueError(f"score {score!r}: one of {', '.join(SCORES)}")


def rank_unlabeled(logits: np.ndarray, row_ids: np.ndarray, score: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into the unlabeled split) of the top-`n` rows by score, ties broken by row id; their scores."""
    scores = uncertainty(logits, score)
    order = np.lexsort((row_ids, -scores))[:n]
    return order, scores[order]


def unlabeled_rows(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images, row ids) of the unlabeled split; a row id is the image's row in the source (`index`)."""
    from ssgan.data.parquet import read_split

    path = Path(data_dir) / "unlabeled.parquet"
    images = read_split(path).images
    if len(images) == 0:
        raise DataSourceError(f"{path}: the unlabeled split is empty; there is nothing to suggest")
    return images, pq.read_table(path, columns=["index"]).column("index").to_numpy()


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
        with open(existing, newline="") as f:
            for record in csv.DictReader(f):
                writer.writerow([record["row_id"], record["label"]])
    writer.writerows(zip(rows.tolist(), labels.tolist()))
    return buf.getvalue().encode()
