"""The reference classifier of a prepared dataset: trained once on its whole train pool, cached by the data's hash.

"Whole train pool" means the labeled split and the unlabeled split with the labels the source has
for them (read back through the source's catalogue by each row's `index`): far more labels than the
semi-supervised run sees, so its features describe the data, not the run. Val and test stay out
of its training; its test accuracy is reported with every `fid_classifier_test` it serves.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from ssgan import metrics as M
from ssgan.training.checkpoint import atomic_save
from ssgan.config import DataConfig
from ssgan.data.identity import splits_digest
from ssgan.data.parquet import read_split
from ssgan.quality.feature_nets import reference_payload, train_reference

POOL_SPLITS = ("labeled", "unlabeled", "test")  # what the classifier is trained (and tested) on


def reference_key(data_dir: Path, epochs: int, seed: int) -> str:
    return hashlib.md5(f"{epochs} {seed} {splits_digest(data_dir, POOL_SPLITS)}".encode()).hexdigest()[:16]


def pool_labels(data_cfg: DataConfig, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The unlabeled split's images and the labels the source holds for them (rows it has none for dropped)."""
    from ssgan.data import sources

    unlabeled = read_split(Path(data_dir) / "unlabeled.parquet")
    index = pq.read_table(Path(data_dir) / "unlabeled.parquet", columns=["index"]).column("index").to_numpy()
    labels = sources.load(data_cfg).labels[index]
    known = labels >= 0
    return unlabeled.images[known], labels[known]


def build_reference(data_cfg: DataConfig, data_dir: Path, epochs: int, seed: int = 0) -> dict[str, Any]:
    labeled = read_split(Path(data_dir) / "labeled.parquet")
    pool_images, pool_labels_ = pool_labels(data_cfg, data_dir)
    images = np.concatenate([labeled.images, pool_images])
    labels = np.concatenate([labeled.labels, pool_labels_])
    num_classes = int(labeled.meta["num_classes"])
    print(f"[ssgan] training the reference classifier for generation quality on {len(images)} labeled train-pool "
          f"images ({epochs} epochs; cached by the data's hash)", flush=True)
    model = train_reference(images, labels, num_classes, epochs, seed)
    test = read_split(Path(data_dir) / "test.parquet")
    test_accuracy = M.accuracy(M.predict(model, test.images), test.labels)
    return reference_payload(model, test_accuracy=test_accuracy, train_images=len(images), epochs=epochs, seed=seed)


def load_or_build(data_cfg: DataConfig, data_dir: Path, cache_dir: Path, epochs: int, seed: int = 0) -> dict[str, Any]:
    """The cached reference payload for these prepared splits, else train it and cache it."""
    path = Path(cache_dir) / "reference" / f"{reference_key(data_dir, epochs, seed)}.pt"
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    payload = build_reference(data_cfg, data_dir, epochs, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(payload, path)
    return payload
