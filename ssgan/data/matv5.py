"""A streaming reader for MATLAB v5 .mat files (SVHN's format), compressed variables included.

scipy.io.loadmat materialises every variable; SVHN's `extra` set alone is 1.6 GB. Here a variable's
elements are read sequentially (through zlib when compressed), so images can be decoded in chunks.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from ssgan.data.catalog import DataSourceError

MI_MATRIX, MI_COMPRESSED = 14, 15
MI_TYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32,
            7: np.float32, 9: np.float64, 12: np.int64, 13: np.uint64}


class _Zlib:
    """Reads a compressed element's inflated bytes; output is capped per call so memory stays bounded."""

    def __init__(self, f: BinaryIO, nbytes: int) -> None:
        self._f, self._left, self._z, self._buf = f, nbytes, zlib.decompressobj(), bytearray()

    def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            if self._z.unconsumed_tail:
                data = self._z.unconsumed_tail
            elif self._left > 0:
                data = self._f.read(min(1 << 20, self._left))
                if not data:
                    break
                self._left -= len(data)
            else:
                break
            try:
                self._buf += self._z.decompress(data, max(n - len(self._buf), 1 << 16))
            except zlib.error as err:
                raise DataSourceError(f"{getattr(self._f, 'name', '.mat file')}: corrupt compressed variable ({err})") from None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


@dataclass
class Variable:
    name: str
    dims: tuple[int, ...]
    dtype: np.dtype  # of the stored real part
    nbytes: int  # of the real part
    reader: object  # positioned at the start of the real part's data


def _read(f, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DataSourceError(f"{path}: truncated .mat file ({what} ends early)")
    return data


def _tag(f, path: Path) -> tuple[int, int, bytes | None]:
    """(type, nbytes, small-element data or None)."""
    dtype, nbytes = struct.unpack("<II", _read(f, 8, path, "an element tag"))
    if dtype >> 16:  # small data element: size in the upper half, data in the tag's second word
        return dtype & 0xFFFF, dtype >> 16, struct.pack("<I", nbytes)
    return dtype, nbytes, None


def _element(f, path: Path, what: str) -> tuple[int, bytes]:
    dtype, nbytes, small = _tag(f, path)
    if small is not None:
        return dtype, small[:nbytes]
    data = _read(f, nbytes, path, what)
    _read(f, -nbytes % 8, path, what)  # padding to 8 bytes
    return dtype, data


def _matrix_header(f, path: Path, top_type: int) -> Variable:
    if top_type != MI_MATRIX:
        raise DataSourceError(f"{path}: unsupported .mat element type {top_type}")
    _element(f, path, "array flags")
    _, dims_raw = _element(f, path, "dimensions")
    dims = struct.unpack(f"<{len(dims_raw) // 4}i", dims_raw)
    _, name = _element(f, path, "the array name")
    dtype, nbytes, small = _tag(f, path)
    if dtype not in MI_TYPES:
        raise DataSourceError(f"{path}: variable {name.decode(errors='replace')} has unsupported data type {dtype}")
    reader = f if small is None else _Small(small[:nbytes])
    return Variable(name.decode(errors="replace"), dims, np.dtype(MI_TYPES[dtype]), nbytes, reader)


class _Small:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, n: int) -> bytes:
        out, self._data = self._data[:n], self._data[n:]
        return out


def variables(f: BinaryIO, path: Path) -> Iterator[Variable]:
    """Each top-level variable's header; the caller may read its data before asking for the next one."""
    head = _read(f, 128, path, "the header")
    if head.startswith(b"MATLAB 7.3"):
        raise DataSourceError(f"{path}: MATLAB 7.3 (HDF5) .mat files are not supported; save it with -v7")
    if head[126:128] != b"IM":
        raise DataSourceError(f"{path}: not a little-endian MATLAB v5 .mat file")
    while True:
        start = f.tell()
        raw = f.read(8)
        if not raw:
            return
        f.seek(start)
        top_type, nbytes, _ = _tag(f, path)
        body = _Zlib(f, nbytes) if top_type == MI_COMPRESSED else f
        if top_type == MI_COMPRESSED:
            top_type, _, _ = _tag(body, path)
        yield _matrix_header(body, path, top_type)
        f.seek(start + 8 + nbytes)


def read_variable(path: Path, name: str, chunk_bytes: int | None = None) -> Iterator[tuple[Variable, bytes]]:
    """The named variable's header and its data, in pieces of `chunk_bytes` (all at once when None)."""
    with open(path, "rb") as f:
        for var in variables(f, path):
            if var.name != name:
                continue
            step = chunk_bytes or var.nbytes
            for start in range(0, var.nbytes, step):
                n = min(step, var.nbytes - start)
                yield var, _read(var.reader, n, path, f"variable {name}")
            return
    raise DataSourceError(f"{path}: no variable named {name!r}")
