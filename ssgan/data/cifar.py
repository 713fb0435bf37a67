"""CIFAR-10's Python archive: a tar.gz of pickled batches (`data`: N x 3072 uint8 rows, R then G then B planes).

The pickles are read with an unpickler that only admits the numpy pieces an array needs, so a
tampered archive cannot run code. One 10,000-image batch (30 MB) is decoded at a time.
"""
from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from ssgan.data.catalog import CHUNK_ROWS, DataSourceError

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
SIDE = 32

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _batches(path: Path) -> Iterator[tuple[str, dict]]:
    """(batch name, unpickled dict) for each data/test batch, in archive order."""
    path = Path(path)
    if not path.is_file():
        raise DataSourceError(f"{path}: not found")
    try:
        with tarfile.open(path, "r|gz") as tar:
            for member in tar:
                name = Path(member.name).name
                if member.isfile() and (name in TRAIN_BATCHES or name == TEST_BATCH):
                    raw = tar.extractfile(member).read()
                    try:
                        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
                    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
                        raise DataSourceError(f"{path}: {member.name} is not a CIFAR-10 batch ({err})") from None
                    yield name, _check(path, member.name, batch)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataSourceError(f"{path}: truncated or corrupt tar.gz archive ({err})") from None


def _check(path: Path, member: str, batch) -> dict:
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataSourceError(f"{path}: {member} is not a CIFAR-10 batch (no data/labels)")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise DataSourceError(f"{path}: {member}: data must be uint8 N x {3 * SIDE * SIDE}")
    if len(batch[b"labels"]) != len(data):
        raise DataSourceError(f"{path}: {member}: {len(data)} images but {len(batch[b'labels'])} labels")
    return batch


def read_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels of every batch in archive order, and the mask of the test batch's rows."""
    labels, test = [], []
    for name, batch in _batches(path):
        labels.append(np.asarray(batch[b"labels"], np.int64))
        test.append(np.full(len(labels[-1]), name == TEST_BATCH))
    found = len(labels)
    if found != len(TRAIN_BATCHES) + 1:
        raise DataSourceError(f"{path}: {found} of the 6 CIFAR-10 batches (data_batch_1..5, test_batch) found")
    return np.concatenate(labels), np.concatenate(test)


def iter_images(path: Path, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """uint8 (n, 32, 32, 3) chunks in the order `read_labels` gives."""
    for _, batch in _batches(path):
        data = batch.pop(b"data")
        for start in range(0, len(data), rows):
            yield data[start:start + rows].reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
