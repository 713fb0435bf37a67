"""What every source hands the prepare stage: labels up front, images later as a stream of chunks.

Splitting needs only the labels, which are small even for 600k images; images are decoded chunk by
chunk while the splits are written, so memory stays bounded whatever the dataset size.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

# Images decoded per chunk: small enough to bound memory, large enough to amortise per-call costs.
CHUNK_ROWS = 4096
UNLABELED = -1  # label of an image that comes without one (image_folder's unlabeled/, null Parquet labels)


class DataSourceError(ValueError):
    """Source data that is missing, corrupt or inconsistent; the message names the file and the fault."""


@dataclass(frozen=True)
class Catalog:
    name: str
    labels: np.ndarray  # (N,) int64 in 0..K-1, or UNLABELED
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (H, W, C) of the images `chunks` yields
    # Yields uint8 (n, H, W, C) arrays covering rows 0..N-1 in order; may raise DataSourceError midway.
    chunks: Callable[[], Iterator[np.ndarray]]
    # Source file name -> "sha256:..." or "md5:..."; streaming readers add theirs as they finish a file.
    checksums: dict[str, str] = field(default_factory=dict)
    official_test: np.ndarray | None = None  # (N,) bool: the source's own test set, if it has one
    class_paths: tuple[str, ...] | None = None  # where each class comes from, for error messages

    def __post_init__(self) -> None:
        k = len(self.class_names)
        labeled = self.labels[self.labels != UNLABELED]
        if len(labeled) and (labeled.min() < 0 or labeled.max() >= k):
            raise DataSourceError(f"{self.name}: labels must lie in 0..{k - 1}")
        if self.official_test is not None and self.official_test.shape != self.labels.shape:
            raise ValueError(f"{self.name}: official_test mask does not match the labels")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def require_path(path: Path, key: str = "data.path") -> Path:
    path = Path(path)
    if not path.exists():
        raise DataSourceError(f"{path}: not found (set by {key})")
    return path


def rechunk(arrays: Iterator[np.ndarray], rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """Regroup a stream of image arrays into chunks of exactly `rows` (the last may be shorter)."""
    pending: list[np.ndarray] = []
    count = 0
    for arr in arrays:
        pending.append(arr)
        count += len(arr)
        while count >= rows:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield joined[:rows]
            rest = joined[rows:]
            pending, count = ([rest] if len(rest) else []), len(rest)
    if count:
        yield np.concatenate(pending) if len(pending) > 1 else pending[0]
