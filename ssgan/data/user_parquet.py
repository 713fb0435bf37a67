"""A user's Parquet file: an image column (encoded bytes, or an array of 0..255 integers) and a label column.

Rows whose label is null are unlabeled. Labels must be integers 0..K-1 where K is the number of
distinct labels, so a typo'd class id is an error rather than a silent extra class.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ssgan.config import DataConfig
from ssgan.data.catalog import CHUNK_ROWS, UNLABELED, Catalog, DataSourceError, sha256_file
from ssgan.data.transform import decode, fit_array


def _open(path: Path) -> pq.ParquetFile:
    if not path.is_file():
        raise DataSourceError(f"{path}: not found (data.path for data.source parquet)")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataSourceError(f"{path}: not a Parquet file ({err})") from None


def _column(pf: pq.ParquetFile, path: Path, name: str, key: str) -> pa.DataType:
    names = pf.schema_arrow.names
    if name not in names:
        raise DataSourceError(f"{path}: no column {name!r} ({key}); columns: {', '.join(names)}")
    return pf.schema_arrow.field(name).type


def read_labels(pf: pq.ParquetFile, path: Path, column: str) -> np.ndarray:
    kind = _column(pf, path, column, "data.label_column")
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise DataSourceError(f"{path}: label column {column!r} has type {kind}; labels must be integers 0..K-1")
    values = pf.read(columns=[column]).column(0).combine_chunks()
    present = ~np.asarray(values.is_null())
    raw = values.fill_null(0).to_numpy()
    if pa.types.is_floating(kind) and not np.all(np.isfinite(raw) & (raw == np.round(raw))):
        row = int(np.flatnonzero(present & ~(np.isfinite(raw) & (raw == np.round(raw))))[0])
        raise DataSourceError(f"{path}: non-integer label {float(raw[row])} in column {column!r} at row {row}")
    labels = np.where(present, raw, UNLABELED).astype(np.int64)
    k = len(np.unique(labels[present]))
    bad = present & ((labels < 0) | (labels >= k))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataSourceError(f"{path}: label {labels[row]} at row {row} is outside 0..{k - 1} "
                              f"(column {column!r} has {k} distinct labels; they must be 0..K-1)")
    return labels


def catalog(cfg: DataConfig) -> Catalog:
    path = Path(cfg.path)
    pf = _open(path)
    labels = read_labels(pf, path, cfg.label_column)
    kind = _column(pf, path, cfg.image_column, "data.image_column")
    encoded = pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)
    if not (encoded or pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
        raise DataSourceError(f"{path}: image column {cfg.image_column!r} has type {kind}; "
                              "expected encoded image bytes or an array of 0..255 integers")
    target = (cfg.image_size, cfg.image_size, cfg.channels)
    k = int(labels.max(initial=-1)) + 1
    checksums = {path.name: sha256_file(path)}
    return Catalog("parquet", labels, tuple(str(i) for i in range(k)), target,
                   lambda: _chunks(pf, path, cfg, target, encoded), checksums)


def _chunks(pf: pq.ParquetFile, path: Path, cfg: DataConfig, target, encoded: bool) -> Iterator[np.ndarray]:
    row = 0
    for batch in pf.iter_batches(batch_size=CHUNK_ROWS, columns=[cfg.image_column]):
        out = np.empty((batch.num_rows, *target), np.uint8)
        for i, value in enumerate(batch.column(0).to_pylist()):
            where = f"{path} row {row + i}"
            if value is None:
                raise DataSourceError(f"{where}: null image in column {cfg.image_column!r}")
            out[i] = decode(value, target, cfg.resize, where) if encoded else _array(value, target, cfg.resize, where)
        row += batch.num_rows
        yield out


def _array(value: list, target: tuple[int, int, int], resize: bool, where: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or arr.size == 0:
        raise DataSourceError(f"{where}: image array is ragged or not numeric")
    if np.any(arr != np.round(arr)) or arr.min() < 0 or arr.max() > 255:
        raise DataSourceError(f"{where}: image values must be integers 0..255")
    if arr.ndim == 1:  # flat: the configured shape tells how to fold it
        if arr.size != int(np.prod(target)):
            raise DataSourceError(f"{where}: flat image of {arr.size} values; data.image_size/channels need {int(np.prod(target))}")
        arr = arr.reshape(target)
    elif arr.ndim == 2:
        arr = arr[..., None]
    elif arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise DataSourceError(f"{where}: image array of shape {arr.shape}; expected (H, W), (H, W, C) or flat")
    return fit_array(arr.astype(np.uint8)[None], target, resize, where)[0]
