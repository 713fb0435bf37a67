"""Seeded, stratified splits into labeled / unlabeled / val / test index sets (pure numpy, labels only)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


class SplitError(ValueError):
    """The data cannot be split as the params ask."""


@dataclass(frozen=True)
class Splits:
    labeled: np.ndarray
    unlabeled: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"labeled": self.labeled, "unlabeled": self.unlabeled, "val": self.val, "test": self.test}


def proportional_counts(class_sizes: np.ndarray, total: int) -> np.ndarray:
    """Split `total` across classes in proportion to their sizes (largest remainder, ties to the lower class)."""
    exact = class_sizes * (total / class_sizes.sum())
    counts = np.floor(exact).astype(np.int64)
    remainder = exact - counts
    order = np.lexsort((np.arange(len(class_sizes)), -remainder))
    counts[order[: total - counts.sum()]] += 1
    return counts


def balanced_counts(num_classes: int, total: int) -> np.ndarray:
    """`total` labels spread evenly over the classes; the remainder goes to the lowest classes."""
    counts = np.full(num_classes, total // num_classes, np.int64)
    counts[: total % num_classes] += 1
    return counts


def stratified_take(labels: np.ndarray, pool: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw counts[k] indices of class k from `pool` (sorted output, so the result is order-independent)."""
    taken = []
    for k, n in enumerate(counts):
        members = pool[labels[pool] == k]
        taken.append(rng.permutation(members)[:n])
    return np.sort(np.concatenate(taken)) if taken else np.empty(0, np.int64)


def make_splits(labels: np.ndarray, num_classes: int, n_labeled_per_class: int, val_size: int, test_size: int, seed: int,
                *, n_labeled: int | None = None, official_test: np.ndarray | None = None,
                class_names: Sequence[str] | None = None, class_paths: Sequence[str] | None = None) -> Splits:
    """Test set (the source's own, else a stratified hold-out), a stratified val set, then the labeled examples.

    Labels < 0 mark images that come without a label: they can only be unlabeled. The unlabeled split is
    everything else of the train pool, so every example lands in exactly one split.
    """
    rng = np.random.default_rng(seed)
    holdout = official_test is None or not official_test.any()
    in_test = np.zeros(len(labels), bool) if holdout else official_test
    candidates = np.flatnonzero((labels >= 0) & ~in_test)
    extra_unlabeled = np.flatnonzero((labels < 0) & ~in_test)
    per_class = balanced_counts(num_classes, n_labeled) if n_labeled is not None else np.full(num_classes, n_labeled_per_class)
    labels_key = f"n_labeled ({n_labeled})" if n_labeled is not None else f"n_labeled_per_class*K ({n_labeled_per_class}*{num_classes})"
    needed = val_size + (test_size if holdout else 0) + int(per_class.sum())
    if needed > len(candidates) or (needed == len(candidates) and not len(extra_unlabeled)):
        test_part = f" + test_size ({test_size})" if holdout else ""
        raise SplitError(f"data: val_size ({val_size}){test_part} + {labels_key} must leave unlabeled data out of "
                         f"{len(candidates)} examples; lower them")
    sizes = np.bincount(labels[candidates], minlength=num_classes)
    if holdout:
        test = stratified_take(labels, candidates, proportional_counts(sizes, test_size), rng)
        rest = np.setdiff1d(candidates, test)
    else:
        test, rest = np.flatnonzero(in_test), candidates
    val = stratified_take(labels, rest, proportional_counts(np.bincount(labels[rest], minlength=num_classes), val_size), rng)
    pool = np.setdiff1d(rest, val)
    pool_sizes = np.bincount(labels[pool], minlength=num_classes)
    short = np.flatnonzero(pool_sizes < per_class)
    if len(short):
        k = int(short[0])
        raise SplitError(_short_class_message(k, labels, test, val, sizes, per_class, holdout, n_labeled, class_names, class_paths))
    labeled = stratified_take(labels, pool, per_class, rng)
    unlabeled = np.union1d(np.setdiff1d(pool, labeled), extra_unlabeled)
    return Splits(labeled=labeled, unlabeled=unlabeled, val=val, test=test)


def _short_class_message(k: int, labels: np.ndarray, test: np.ndarray, val: np.ndarray, sizes: np.ndarray, per_class: np.ndarray,
                         holdout: bool, n_labeled: int | None, class_names, class_paths) -> str:
    if class_paths:
        where = f"class folder {class_paths[k]}"
    else:
        name = class_names[k] if class_names else str(k)
        where = f"class {k}" + ("" if name == str(k) else f" ({name})")
    key = "n_labeled" if n_labeled is not None else "n_labeled_per_class"
    shares = f"{key} ({per_class[k]}) + its val share ({int(np.sum(labels[val] == k))})"
    if holdout:
        shares += f" + its test share ({int(np.sum(labels[test] == k))})"
    return f"data.{key}: {where} has only {sizes[k]} examples, fewer than {shares}; use fewer labels or add examples"


def parse_labels_csv(path: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(row ids, labels) of a `row_id,label` CSV; `what` names it in the one-line errors."""
    import csv
    from pathlib import Path

    if not Path(path).exists():
        raise SplitError(f"{what}: {path} not found; give a CSV with the columns row_id,label")
    rows, labels = [], []
    # utf-8-sig: Excel writes a byte-order mark, which would otherwise glue itself to the first column name.
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"row_id", "label"} <= set(reader.fieldnames):
            raise SplitError(f"{what}: {path} needs the columns row_id,label")
        for line, record in enumerate(reader, start=2):
            try:
                rows.append(int(record["row_id"]))
                labels.append(int(record["label"]))
            except (TypeError, ValueError):
                raise SplitError(f"{what}: {path} line {line}: row_id and label must be integers") from None
    return np.asarray(rows, np.int64), np.asarray(labels, np.int64)


def read_extra_labels(path: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(row ids, labels) of data.extra_labels (ssgan add-labels writes it); one-line errors."""
    rows_arr, labels_arr = parse_labels_csv(path, "data.extra_labels")
    bad = np.flatnonzero((labels_arr < 0) | (labels_arr >= num_classes))
    if len(bad):
        raise SplitError(f"data.extra_labels: {path}: row {rows_arr[bad[0]]} has label {labels_arr[bad[0]]}, "
                         f"outside 0..{num_classes - 1}")
    ids, counts = np.unique(rows_arr, return_counts=True)
    if (counts > 1).any():
        raise SplitError(f"data.extra_labels: {path}: row {ids[counts > 1][0]} is labeled twice")
    return rows_arr, labels_arr


def add_labeled(splits: Splits, rows: np.ndarray) -> Splits:
    """Move `rows` (source row ids) from unlabeled to labeled; each must be in the unlabeled split."""
    if len(rows) == 0:
        return splits
    missing = rows[~np.isin(rows, splits.unlabeled)]
    if len(missing):
        row = int(missing[0])
        where = next((name for name, idx in splits.as_dict().items() if row in idx), "no split (not a row of the source)")
        raise SplitError(f"data.extra_labels: row {row} is not in the unlabeled split (it is in {where}); "
                         f"label only rows of unlabeled.parquet's `index` column")
    return Splits(labeled=np.union1d(splits.labeled, rows), unlabeled=np.setdiff1d(splits.unlabeled, rows),
                  val=splits.val, test=splits.test)
