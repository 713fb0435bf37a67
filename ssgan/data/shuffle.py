"""A seeded shuffle of one split's rows while they stream in source order, in bounded memory.

Data-parallel training gives each rank a contiguous share of the unlabeled split. Sources come in
an order that is far from random (an image folder class by class, SVHN's train then its 531k
"extra" digits), so a contiguous share of source order is a skewed sample. The split is therefore
written in a seeded random order. The whole permutation is known before any image is read (it
is over row ids), so rows are scattered to temp files by their output position range ("bucket")
as they stream in, and each bucket is then read back, ordered and written: a two-pass shuffle
whose memory is one bucket, whatever the split's size.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

BUCKET_BYTES = 64 * 2**20  # image bytes held in memory at once while writing the shuffled split


class RowWriter(Protocol):
    def append(self, images: np.ndarray, labels: np.ndarray | None, index: np.ndarray) -> None: ...

    def close(self) -> None: ...


def shuffled_order(rows: np.ndarray, seed: int) -> np.ndarray:
    """The output order of `rows` (source row ids): a permutation that depends on `seed` and the ids alone."""
    # A stream of its own, so the shuffle never shifts the split draws made from `seed`.
    return np.random.default_rng([seed, 0x5EED]).permutation(np.sort(rows))


class ShufflingWriter:
    """Accepts the rows `rows` in any order; hands them to `writer` in `shuffled_order(rows, seed)`."""

    def __init__(self, writer: RowWriter, rows: np.ndarray, seed: int, work_dir: Path, row_bytes: int,
                 bucket_bytes: int = BUCKET_BYTES) -> None:
        self._writer, self._dir = writer, Path(work_dir)
        order = shuffled_order(rows, seed)
        self._ids = np.sort(rows)
        self._position = np.empty(len(order), np.int64)  # by sorted id: where that row goes
        self._position[np.searchsorted(self._ids, order)] = np.arange(len(order))
        self._n = len(order)
        self._buckets = max(1, -(-self._n * row_bytes // bucket_bytes))
        self._files: dict[int, BinaryIO] = {}
        self._dir.mkdir(parents=True, exist_ok=False)

    def append(self, images: np.ndarray, labels: np.ndarray | None, index: np.ndarray) -> None:
        slot = np.searchsorted(self._ids, index)
        if np.any(slot >= self._n) or np.any(self._ids[np.minimum(slot, self._n - 1)] != index):
            raise ValueError("ShufflingWriter: a row id that is not in this split")
        position = self._position[slot]
        bucket = position * self._buckets // self._n
        for b in np.unique(bucket):
            mine = bucket == b
            f = self._files.get(int(b)) or self._files.setdefault(int(b), open(self._dir / f"{b}.npy", "wb"))
            for array in (position[mine], images[mine], index[mine], None if labels is None else labels[mine]):
                np.save(f, np.empty(0) if array is None else array, allow_pickle=False)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        for b in sorted(self._files):
            position, images, index, labels = _read_bucket(self._dir / f"{b}.npy")
            order = np.argsort(position)
            self._writer.append(images[order], None if labels is None else labels[order], index[order])
        self._writer.close()
        shutil.rmtree(self._dir)


def _read_bucket(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    parts: list[list[np.ndarray]] = [[], [], [], []]
    size = path.stat().st_size
    with open(path, "rb") as f:
        while f.tell() < size:
            for part in parts:
                part.append(np.load(f, allow_pickle=False))
    position, images, index, labels = (np.concatenate(p) for p in parts)
    return position, images, index, (labels if len(labels) else None)
