"""IDX files (MNIST's format): a magic number, big-endian dimensions, then raw uint8 data; gzipped or not.

Images are read sequentially in chunks, so a gzipped file never needs decompressing to disk or memory.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ssgan.data.catalog import CHUNK_ROWS, DataSourceError
from ssgan.data.rawfile import Stream, open_stream

UBYTE = 0x08  # the only IDX element type image datasets use


@dataclass(frozen=True)
class IdxPart:
    """A pair of image and label files, e.g. MNIST's train or t10k set."""
    images: Path
    labels: Path
    is_test: bool = False


def read_header(stream: Stream) -> tuple[int, ...]:
    magic = stream.read_exact(4, "the IDX magic number")
    if magic[:2] != b"\x00\x00" or magic[2] != UBYTE or not 1 <= magic[3] <= 4:
        raise DataSourceError(f"{stream.path}: wrong IDX magic number 0x{magic.hex()}; expected 0x000008NN "
                              "(unsigned bytes, NN = 1..4 dimensions)")
    return struct.unpack(f">{magic[3]}I", stream.read_exact(4 * magic[3], "the IDX dimensions"))


def image_header(path: Path) -> tuple[int, tuple[int, int, int]]:
    """(count, (H, W, C)) from an images file's header alone."""
    with open_stream(path) as stream:
        dims = read_header(stream)
    if len(dims) not in (3, 4):
        raise DataSourceError(f"{path}: IDX images need 3 or 4 dimensions (N, H, W[, C]), got {len(dims)}")
    shape = (dims[1], dims[2], dims[3] if len(dims) == 4 else 1)
    if shape[2] not in (1, 3):
        raise DataSourceError(f"{path}: images have {shape[2]} channels; only 1 or 3 are supported")
    return dims[0], shape


def read_labels(path: Path) -> tuple[np.ndarray, str]:
    """Labels and the file's checksum."""
    with open_stream(path) as stream:
        dims = read_header(stream)
        if len(dims) != 1:
            raise DataSourceError(f"{path}: IDX labels need 1 dimension, got {len(dims)}")
        labels = np.frombuffer(stream.read_exact(dims[0], f"{dims[0]} labels"), np.uint8).astype(np.int64)
        _expect_end(stream)
        return labels, stream.checksum()


def iter_images(path: Path, checksums: dict[str, str], rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """uint8 (n, H, W, C) chunks in file order; records the file's checksum (by name) once fully read."""
    count, shape = image_header(path)
    size = int(np.prod(shape))
    with open_stream(path) as stream:
        read_header(stream)
        for start in range(0, count, rows):
            n = min(rows, count - start)
            data = stream.read_exact(n * size, f"images {start}..{start + n - 1}")
            yield np.frombuffer(data, np.uint8).reshape(n, *shape)
        _expect_end(stream)
        checksums[path.name] = stream.checksum()


def _expect_end(stream: Stream) -> None:
    # Reading past the data also makes gzip check its CRC and length trailer.
    if stream.read_rest():
        raise DataSourceError(f"{stream.path}: more data than its IDX header declares")


def check_parts(parts: list[IdxPart]) -> tuple[list[np.ndarray], tuple[int, int, int], dict[str, str]]:
    """Read every part's labels and check them against its images header; returns labels, shape, checksums."""
    labels, shape, checksums = [], None, {}
    for part in parts:
        count, part_shape = image_header(part.images)
        part_labels, checksums[part.labels.name] = read_labels(part.labels)
        if len(part_labels) != count:
            raise DataSourceError(f"{part.images}: {count} images but {part.labels.name} has {len(part_labels)} labels")
        if shape is not None and part_shape != shape:
            raise DataSourceError(f"{part.images}: images are {part_shape}, other files have {shape}")
        shape = part_shape
        labels.append(part_labels)
    return labels, shape, checksums


def find_parts(directory: Path) -> list[IdxPart]:
    """Pair `<prefix>-images-idxN-ubyte[.gz]` with `<prefix>-labels-idx1-ubyte[.gz]`; prefix t10k/test is the test set."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataSourceError(f"{directory}: not found or not a directory (data.path for data.source idx)")
    parts = []
    for images in sorted(directory.glob("*-images-idx[34]-ubyte*")):
        if images.name.endswith((".gz", "-ubyte")):
            prefix = images.name.split("-images-")[0]
            candidates = [directory / f"{prefix}-labels-idx1-ubyte{ext}" for ext in ("", ".gz")]
            found = [c for c in candidates if c.exists()]
            if not found:
                raise DataSourceError(f"{images}: no matching {prefix}-labels-idx1-ubyte[.gz] beside it")
            parts.append(IdxPart(images, found[0], is_test=prefix in ("t10k", "test")))
    if not parts:
        raise DataSourceError(f"{directory}: no <prefix>-images-idx3-ubyte[.gz] files (with matching -labels-idx1-ubyte)")
    # Train parts first, then test: row indices stay stable when a test part is added.
    return sorted(parts, key=lambda p: (p.is_test, p.images.name))
