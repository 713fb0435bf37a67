"""Per-worker data: this rank's shard of unlabeled images, the whole labeled set, and batch streams.

A worker gets its splits from a `SplitSource`: on Ray, object references the driver put
(ssgan.driver.data_refs: no worker ever opens a path of the driver's machine); in-process (tests,
benchmarks), the prepared files themselves (`SplitFiles`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import torch

from ssgan.training.checkpoint import DataMeta
from ssgan.data.parquet import Split, describe, read_split
from ssgan.metrics import to_device, to_tensor
from ssgan.training.step import Batch


class UnlabeledStream(Protocol):
    """This rank's unlabeled rows as a stream (Ray Data, ssgan.driver.data_refs), for a pool too big
    to hold: `passes(batch_size, seed)` yields one pass of (batch_size, H, W, C) uint8 batches."""

    def passes(self, batch_size: int, seed: int) -> Iterator[np.ndarray]: ...


@dataclass
class WorkerData:
    labeled: Split
    unlabeled: Split | None  # this rank's shard only; None when it streams
    unlabeled_total: int  # rows over all ranks, so every rank agrees on the steps per epoch
    meta: DataMeta
    unlabeled_stream: UnlabeledStream | None = None

    @classmethod
    def of(cls, labeled: Split, unlabeled_shard: Split | None, unlabeled_total: int,
           stream: UnlabeledStream | None = None) -> "WorkerData":
        h, w, c = labeled.meta["shape"]
        meta = DataMeta((c, h, w), labeled.num_classes, tuple(labeled.meta["class_names"]), labeled.meta["source"])
        return cls(labeled, unlabeled_shard, unlabeled_total, meta, stream)

    @classmethod
    def load(cls, data_dir: Path, rank: int, world_size: int) -> "WorkerData":
        data_dir = Path(data_dir)
        return cls.of(read_split(data_dir / "labeled.parquet"), read_split(data_dir / "unlabeled.parquet", rank, world_size),
                      describe(data_dir / "unlabeled.parquet")[1])

    def steps_per_epoch(self, batch_size: int, world_size: int) -> int:
        """One pass over a shard: the same number on every rank."""
        return max(1, self.unlabeled_total // (batch_size * world_size))


class SplitSource(Protocol):
    """Where a rank's data comes from."""

    def worker_data(self, rank: int, world_size: int) -> WorkerData: ...
    def val(self) -> Split: ...


@dataclass(frozen=True)
class SplitFiles:
    """The prepared Parquet files, read by path: for one process on the machine that holds them."""
    data_dir: str

    def worker_data(self, rank: int, world_size: int) -> WorkerData:
        return WorkerData.load(Path(self.data_dir), rank, world_size)

    def val(self) -> Split:
        return read_split(Path(self.data_dir) / "val.parquet")


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


def streamed_batches(stream: UnlabeledStream, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless unlabeled batches from a stream: pass after pass, each shuffled by a seed from `rng`."""
    while True:
        empty = True
        for batch in stream.passes(batch_size, int(rng.integers(2**31))):
            empty = False
            yield batch
        if empty:
            raise ValueError("cannot draw batches from an empty unlabeled stream")


def batch_stream(data: WorkerData, batch_size: int, rng: np.random.Generator, device: torch.device) -> Iterator[Batch]:
    """Equal-sized labeled and unlabeled batches; the small labeled set is tiled, so classes stay balanced."""
    labeled_idx = index_stream(len(data.labeled.images), batch_size, rng)
    if data.unlabeled_stream is not None:
        unlabeled = streamed_batches(data.unlabeled_stream, batch_size, rng)
    else:
        unlabeled = (data.unlabeled.images[ui] for ui in index_stream(len(data.unlabeled.images), batch_size, rng))
    while True:
        li = next(labeled_idx)
        yield Batch(to_tensor(data.labeled.images[li], device), to_device(data.labeled.labels[li], device),
                    to_tensor(next(unlabeled), device))
