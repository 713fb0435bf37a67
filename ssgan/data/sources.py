"""The registry of data sources: `data.source` -> a function that builds the source's `Catalog`."""
from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np

from ssgan.config import DataConfig
from ssgan.data import datasets, image_folder, user_parquet
from ssgan.data.catalog import Catalog
from ssgan.data.transform import fit_array, mismatch, target_shape


def load_digits(cfg: DataConfig) -> Catalog:
    """scikit-learn's embedded 8x8 digits (1797 images, no download); 0..16 rescaled to 0..255."""
    from sklearn.datasets import load_digits as _load

    raw = _load()
    images = np.rint(raw.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
    native = images.shape[1:]
    target = target_shape(native, cfg.image_size, cfg.channels)
    if not cfg.resize and target != native:
        raise mismatch("digits", native, target)
    checksum = hashlib.sha256(images.tobytes() + raw.target.astype(np.int64).tobytes()).hexdigest()
    return Catalog("digits", raw.target.astype(np.int64), tuple(str(n) for n in raw.target_names), target,
                   lambda: iter([fit_array(images, target, cfg.resize, "digits")]),
                   {"sklearn digits (images, labels)": f"sha256:{checksum}"})


SOURCES: dict[str, Callable[[DataConfig], Catalog]] = {
    "digits": load_digits,
    "mnist": datasets.mnist_like,
    "fashion_mnist": datasets.mnist_like,
    "cifar10": datasets.cifar10,
    "svhn": datasets.svhn_sets,
    "idx": datasets.idx_dir,
    "image_folder": image_folder.catalog,
    "parquet": user_parquet.catalog,
}


def load(cfg: DataConfig) -> Catalog:
    try:
        build = SOURCES[cfg.source]
    except KeyError:
        raise ValueError(f"data.source: unknown source {cfg.source!r}; available: {', '.join(SOURCES)}") from None
    return build(cfg)
