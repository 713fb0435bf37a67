"""The images a user hands `predict` / `fid`: image files, folders of images and Parquet files, decoded by
`prepare`'s own decoder (`transform.decode`) to the shape a model expects."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ssgan.data.catalog import DataSourceError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def read_images(inputs: list[str], shape: tuple[int, int, int],
                skipped: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(names, uint8 images at `shape`) from image files, folders and Parquet files (a prepared split, or
    a column `image` of encoded bytes), converted by `prepare`'s own decoder. A file that does not
    decode is an error naming it; with a `skipped` list, its error line is appended there instead."""
    from ssgan.data.transform import SKIP_HINT, decode, fit_array

    names, images = [], []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise DataSourceError(f"{item}: not found; give image files, a folder of images or a Parquet file")
        if path.is_dir():
            # A folder named like an image is walked by rglob itself, not read as one.
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir())
            if not files:
                raise DataSourceError(f"{item}: no images ({', '.join(IMAGE_EXTENSIONS)})")
        elif path.suffix == ".parquet":
            batch = _parquet_images(path, shape)
            names += [f"{path}#{i}" for i in range(len(batch))]
            images.append(fit_array(batch, shape, True, str(path)))
            continue
        else:
            files = [path]
        for f in files:
            try:
                if not f.is_file():  # a FIFO or device named x.png would block read_bytes forever
                    raise DataSourceError(f"{f}: not a regular file (a pipe, socket or device); give image files{SKIP_HINT}")
                images.append(decode(f.read_bytes(), shape, True, str(f))[None])
            except DataSourceError as err:
                if skipped is None:
                    raise
                skipped.append(str(err).removesuffix(SKIP_HINT))
                continue
            names.append(str(f))
    if not names:
        raise DataSourceError(f"{' '.join(inputs)}: no image could be read")
    return names, np.concatenate(images)


def _parquet_images(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    import pyarrow.parquet as pq

    from ssgan.data.parquet import PreparedDataError, read_split
    from ssgan.data.transform import decode

    try:
        return read_split(path).images
    except (PreparedDataError, KeyError, ValueError):
        pass
    table = pq.read_table(path)
    if "image" not in table.column_names:
        raise DataSourceError(f"{path}: neither a prepared split nor a Parquet file with an `image` column of encoded images")
    return np.stack([decode(b, shape, True, f"{path}#{i}") for i, b in enumerate(table.column("image").to_pylist())])
