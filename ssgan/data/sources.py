"""Data sources: each returns a `Dataset` of uint8 HWC images, integer labels and class names."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64 in 0..K-1
    class_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(f"{self.source}: images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"{self.source}: {len(self.labels)} labels for {len(self.images)} images")
        k = len(self.class_names)
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= k):
            raise ValueError(f"{self.source}: labels must lie in 0..{k - 1}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_digits() -> Dataset:
    """scikit-learn's embedded 8x8 digits (1797 images, no download); 0..16 rescaled to 0..255."""
    from sklearn.datasets import load_digits as _load

    raw = _load()
    images = np.rint(raw.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
    return Dataset(images, raw.target.astype(np.int64), tuple(str(n) for n in raw.target_names), "digits")


SOURCES = {"digits": load_digits}


def load(source: str) -> Dataset:
    try:
        return SOURCES[source]()
    except KeyError:
        raise ValueError(f"data.source: unknown source {source!r}; available: {', '.join(SOURCES)}") from None
