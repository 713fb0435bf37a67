"""The images a user hands `predict` / `fid`: image files, folders of images and Parquet files, decoded by
`prepare`'s own decoder (`transform.decode`) to the shape a model expects, a batch at a time."""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

import numpy as np

from ssgan.data.catalog import DataSourceError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
BATCH_SIZE = 256


def iter_images(inputs: list[str], shape: tuple[int, int, int], skipped: list[str] | None = None,
                batch_size: int | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
    """(names, uint8 images at `shape`) batches of at most `batch_size` (BATCH_SIZE) from image files, folders and
    Parquet files (a prepared split, or a column `image` of encoded bytes): memory is bounded by the
    batch, not by the inputs. A file that does not decode, or is not a regular file, is an error naming
    it; with a `skipped` list, its error line is appended there instead. A folder's walk passes over what
    is not a regular file (a pipe, socket, device named like an image): noted in `skipped` when given."""
    from ssgan.data.transform import SKIP_HINT

    batch_size = batch_size or BATCH_SIZE
    names: list[str] = []
    images: list[np.ndarray] = []
    found = False
    for name, read in _items(inputs, shape, skipped is not None):
        try:
            image = read() if callable(read) else read
        except DataSourceError as err:
            if skipped is None:
                raise
            skipped.append(str(err).removesuffix(SKIP_HINT))
            continue
        names.append(name)
        images.append(image)
        found = True
        if len(names) == batch_size:
            yield names, np.stack(images)
            names, images = [], []
    if names:
        yield names, np.stack(images)
    if not found:
        raise DataSourceError(f"{' '.join(inputs)}: no image could be read")


def read_images(inputs: list[str], shape: tuple[int, int, int],
                skipped: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """All of `iter_images` at once (for a set that is used whole, as `fid`'s)."""
    batches = list(iter_images(inputs, shape, skipped))
    return [n for names, _ in batches for n in names], np.concatenate([b for _, b in batches])


def _items(inputs: list[str], shape: tuple[int, int, int], note_skips: bool):
    """(name, image or a function that reads it) for every image of the inputs, in order."""
    from ssgan.data.transform import SKIP_HINT, decode

    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise DataSourceError(f"{item}: not found; give image files, a folder of images or a Parquet file")
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir())
            files = [p for p in candidates if p.is_file()]  # is_file: a regular file (or a link to one)
            if note_skips:
                for p in candidates:
                    if not p.is_file():
                        yield str(p), _refuse(p, SKIP_HINT)
            if not files:
                raise DataSourceError(f"{item}: no images ({', '.join(IMAGE_EXTENSIONS)})")
        elif path.suffix == ".parquet":
            yield from _parquet_images(path, shape)
            continue
        else:
            files = [path]
        for f in files:
            yield str(f), lambda f=f: decode(read_regular_file(f), shape, True, str(f))


def _refuse(path: Path, hint: str):
    def read():
        raise DataSourceError(f"{path}: not a regular file (a pipe, socket or device); give image files{hint}")
    return read


def read_regular_file(path: Path) -> bytes:
    """The bytes of a regular file. Anything else named like an image (a FIFO, whose read would block
    forever, a socket, a device such as /dev/zero, a folder) is one error naming it; so is a file
    that cannot be read. Opened without blocking and checked on the open descriptor, so a FIFO put
    in its place after a check cannot hang the read."""
    from ssgan.data.transform import SKIP_HINT

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except IsADirectoryError:
        raise DataSourceError(f"{path}: a folder, not an image file{SKIP_HINT}") from None
    except OSError as err:
        raise DataSourceError(f"{path}: cannot be read ({err.strerror}){SKIP_HINT}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DataSourceError(f"{path}: not a regular file (a pipe, socket or device); give image files{SKIP_HINT}")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as err:
        raise DataSourceError(f"{path}: cannot be read ({err.strerror}){SKIP_HINT}") from None
    finally:
        os.close(fd)


def _parquet_images(path: Path, shape: tuple[int, int, int]):
    """A prepared split (read whole: its pixels are already stored small) or a Parquet file's `image`
    column of encoded images, decoded a record batch at a time."""
    import pyarrow.parquet as pq

    from ssgan.data.parquet import PreparedDataError, read_split
    from ssgan.data.transform import decode, fit_array

    try:
        images = read_split(path).images
    except (PreparedDataError, KeyError, ValueError):
        images = None
    if images is not None:
        for start in range(0, len(images), BATCH_SIZE):
            batch = fit_array(images[start:start + BATCH_SIZE], shape, True, str(path))
            yield from ((f"{path}#{start + i}", img) for i, img in enumerate(batch))
        return
    pf = pq.ParquetFile(path)
    if "image" not in pf.schema_arrow.names:
        raise DataSourceError(f"{path}: neither a prepared split nor a Parquet file with an `image` column of encoded images")
    row = 0
    for batch in pf.iter_batches(batch_size=BATCH_SIZE, columns=["image"]):
        for value in batch.column(0).to_pylist():
            where = f"{path}#{row}"
            yield where, lambda value=value, where=where: decode(value, shape, True, where)
            row += 1
