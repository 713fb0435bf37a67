"""The image sets `ssgan fid` compares: a Parquet split, a folder of images, or a model whose G is sampled.

Every set comes out as uint8 (N, H, W, C), the form `prepare` stores; folder images go through
`prepare`'s own conversion (ssgan.data.transform.decode) to the size and channels asked for.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ssgan.data.catalog import DataSourceError
from ssgan.data.inputs import read_images
from ssgan.tracking.serving import MLFLOW_SCHEMES, load_generator


def native_shape(source: str) -> tuple[int, int, int] | None:
    """(H, W, C) of a Parquet split's or a model file's images; None for a folder or an MLflow URI."""
    path = Path(source)
    if path.suffix == ".parquet" and path.exists():
        from ssgan.data.parquet import describe

        return tuple(describe(path)[0]["shape"])
    if path.suffix == ".pt" and path.exists():
        from ssgan.training.checkpoint import load_model

        c, h, w = load_model(path).meta.image_shape
        return h, w, c
    return None


def load_image_set(source: str, n: int | None, target: tuple[int, int, int] | None, seed: int = 0) -> np.ndarray:
    """`n` images of `source` (all of a split or folder when None; a model needs n), at `target` (H, W, C)
    for folders. A split or folder larger than `n` gives a seeded random subset."""
    if source.startswith(MLFLOW_SCHEMES) or Path(source).suffix == ".pt":
        return load_generator(source).sample(n or 1000, None, seed)
    path = Path(source)
    if not path.exists():
        raise DataSourceError(f"{source}: not found; give a Parquet split, a folder of images, a model file (.pt) "
                              f"or an MLflow model URI (runs:/..., models:/...)")
    if path.is_dir():
        if target is None:
            raise DataSourceError(f"{source}: a folder of images needs a size: compare it with a split or a model, "
                                  f"or use --metric classifier")
        return _subset(read_images([source], target)[1], n, seed)
    if path.suffix == ".parquet":
        from ssgan.data.parquet import read_split

        return _subset(read_split(path).images, n, seed)
    raise DataSourceError(f"{source}: not a Parquet split (.parquet), a folder, a model file (.pt) or an MLflow URI")


def _subset(images: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    if n is None or len(images) <= n:
        return images
    return images[np.sort(np.random.default_rng(seed).choice(len(images), n, replace=False))]
