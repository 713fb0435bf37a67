"""SVHN's cropped-digits .mat files: X is 32x32x3xN uint8 (column-major, so each image is contiguous), y is N x 1.

Digit 0 is stored as label 10; it becomes 0 here so labels are the digits themselves.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ssgan.data.catalog import CHUNK_ROWS, DataSourceError
from ssgan.data.matv5 import read_variable

CLASS_NAMES = tuple(str(d) for d in range(10))


def read_labels(path: Path) -> np.ndarray:
    ((var, data),) = list(read_variable(path, "y"))
    labels = np.frombuffer(data, var.dtype)
    if np.any(labels != np.round(labels)) or labels.min(initial=1) < 1 or labels.max(initial=1) > 10:
        raise DataSourceError(f"{path}: y must hold the digits 1..10 (10 is digit 0)")
    return np.where(labels == 10, 0, labels).astype(np.int64)


def image_shape(path: Path) -> tuple[int, int, int, int]:
    """(N, H, W, C) from X's header (reads no image data)."""
    for var, _ in read_variable(path, "X", chunk_bytes=1):
        dims = var.dims
        if var.dtype != np.uint8 or len(dims) != 4 or dims[2] not in (1, 3):
            raise DataSourceError(f"{path}: X must be uint8 H x W x C x N, got {var.dtype} {'x'.join(map(str, dims))}")
        if var.nbytes != int(np.prod(dims)):
            raise DataSourceError(f"{path}: X holds {var.nbytes} bytes, its dimensions need {int(np.prod(dims))}")
        return dims[3], dims[0], dims[1], dims[2]
    raise AssertionError("unreachable")


def iter_images(path: Path, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    n, h, w, c = image_shape(path)
    size = h * w * c
    for _, data in read_variable(path, "X", chunk_bytes=rows * size):
        # Column-major H x W x C per image: read it as C x W x H, then reverse the axes.
        yield np.frombuffer(data, np.uint8).reshape(-1, c, w, h).transpose(0, 3, 2, 1)
