"""Per-worker data: this rank's shard of unlabeled images, the whole labeled set, and batch streams."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ssgan.training.checkpoint import DataMeta
from ssgan.data.parquet import Split, describe, read_split
from ssgan.metrics import to_device, to_tensor
from ssgan.training.step import Batch


@dataclass
class WorkerData:
    labeled: Split
    unlabeled: Split  # this rank's shard only
    unlabeled_total: int  # rows over all ranks, so every rank agrees on the steps per epoch
    meta: DataMeta

    @classmethod
    def load(cls, data_dir: Path, rank: int, world_size: int) -> "WorkerData":
        data_dir = Path(data_dir)
        labeled = read_split(data_dir / "labeled.parquet")
        unlabeled = read_split(data_dir / "unlabeled.parquet", rank, world_size)
        total = describe(data_dir / "unlabeled.parquet")[1]
        h, w, c = labeled.meta["shape"]
        meta = DataMeta((c, h, w), labeled.num_classes, tuple(labeled.meta["class_names"]), labeled.meta["source"])
        return cls(labeled, unlabeled, total, meta)

    def steps_per_epoch(self, batch_size: int, world_size: int) -> int:
        """One pass over a shard: the same number on every rank."""
        return max(1, self.unlabeled_total // (batch_size * world_size))


def index_stream(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless batches of indices into n items: concatenated random permutations (every item once per pass)."""
    if n == 0:
        raise ValueError("cannot draw batches from an empty split")
    buffer = np.empty(0, np.int64)
    while True:
        while len(buffer) < batch_size:
            buffer = np.concatenate([buffer, rng.permutation(n)])
        yield buffer[:batch_size]
        buffer = buffer[batch_size:]


def batch_stream(data: WorkerData, batch_size: int, rng: np.random.Generator, device: torch.device) -> Iterator[Batch]:
    """Equal-sized labeled and unlabeled batches; the small labeled set is tiled, so classes stay balanced."""
    labeled_idx = index_stream(len(data.labeled.images), batch_size, rng)
    unlabeled_idx = index_stream(len(data.unlabeled.images), batch_size, rng)
    while True:
        li, ui = next(labeled_idx), next(unlabeled_idx)
        yield Batch(to_tensor(data.labeled.images[li], device), to_device(data.labeled.labels[li], device),
                    to_tensor(data.unlabeled.images[ui], device))
