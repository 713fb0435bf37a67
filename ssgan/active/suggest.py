"""What to label next: rank the unlabeled split by the classifier's uncertainty (`ssgan suggest`).

Scores (higher = label it sooner), from D's K class logits l:
- `entropy`: of the K-class softmax;
- `margin`: 1 - (p1 - p2), the gap between the two most likely classes, turned so that small gaps rank first;
- `fake`: D's probability of the implicit (K+1)-th class, 1 / (1 + sum_k exp(l_k)): images the
  discriminator finds unlike the data (outliers, or kinds of image the labels do not cover).
"""
from __future__ import annotations

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
