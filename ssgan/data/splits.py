"""Seeded, stratified splits into labeled / unlabeled / val / test index sets (pure numpy)."""
from __future__ import annotations

from dataclasses import dataclass

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


def stratified_take(labels: np.ndarray, pool: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw counts[k] indices of class k from `pool` (sorted output, so the result is order-independent)."""
    taken = []
    for k, n in enumerate(counts):
        members = pool[labels[pool] == k]
        taken.append(rng.permutation(members)[:n])
    return np.sort(np.concatenate(taken)) if taken else np.empty(0, np.int64)


def make_splits(labels: np.ndarray, num_classes: int, n_labeled_per_class: int, val_size: int, test_size: int, seed: int) -> Splits:
    """Stratified hold-out test and val sets, then `n_labeled_per_class` per class from the rest.

    The unlabeled split is the remainder of the train pool: every example lands in exactly one split.
    """
    rng = np.random.default_rng(seed)
    everything = np.arange(len(labels))
    sizes = np.bincount(labels, minlength=num_classes)
    if val_size + test_size + n_labeled_per_class * num_classes >= len(labels):
        raise SplitError(
            f"data: val_size ({val_size}) + test_size ({test_size}) + n_labeled_per_class*K "
            f"({n_labeled_per_class}*{num_classes}) must leave unlabeled data out of {len(labels)} examples; lower them")
    test = stratified_take(labels, everything, proportional_counts(sizes, test_size), rng)
    rest = np.setdiff1d(everything, test)
    val = stratified_take(labels, rest, proportional_counts(np.bincount(labels[rest], minlength=num_classes), val_size), rng)
    pool = np.setdiff1d(rest, val)
    pool_sizes = np.bincount(labels[pool], minlength=num_classes)
    short = np.flatnonzero(pool_sizes <= n_labeled_per_class)
    if len(short):
        k = int(short[0])
        raise SplitError(f"data.n_labeled_per_class: class {k} has only {pool_sizes[k]} training examples; use fewer labels per class")
    labeled = stratified_take(labels, pool, np.full(num_classes, n_labeled_per_class), rng)
    unlabeled = np.setdiff1d(pool, labeled)
    return Splits(labeled=labeled, unlabeled=unlabeled, val=val, test=test)
