"""The Parquet files between stages: one per split, uint8 images as fixed-size binary, metadata in the schema.

Writers go to a temporary directory that is renamed into place at the end, so a failed run never
leaves half-written splits. Readers fail with one line naming the file and the fix.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ssgan.util.fileio import staging

METADATA_KEY = b"ssgan"
SPLITS = ("labeled", "unlabeled", "val", "test")
ROW_GROUP_SIZE = 8192


class PreparedDataError(RuntimeError):
    """A prepared split is missing or unreadable."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray | None  # (N,) int64, None for the unlabeled split
    meta: dict

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])


def _schema(row_bytes: int, with_labels: bool, meta: dict) -> pa.Schema:
    fields = [pa.field("index", pa.int64()), pa.field("image", pa.binary(row_bytes))]
    if with_labels:
        fields.append(pa.field("label", pa.int64()))
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True).encode()})


def _columns(images: np.ndarray, labels: np.ndarray | None, index: np.ndarray) -> dict[str, pa.Array]:
    n, row = len(images), int(np.prod(images.shape[1:]))
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(-1)
    image_col = pa.FixedSizeBinaryArray.from_buffers(pa.binary(row), n, [None, pa.py_buffer(flat)])
    columns = {"index": pa.array(index.astype(np.int64)), "image": image_col}
    if labels is not None:
        columns["label"] = pa.array(labels.astype(np.int64))
    return columns


def split_table(images: np.ndarray, labels: np.ndarray | None, index: np.ndarray, meta: dict) -> pa.Table:
    """One split as an Arrow table; `labels=None` writes no label column at all (the unlabeled split)."""
    full_meta = {**meta, "shape": list(images.shape[1:])}
    schema = _schema(int(np.prod(images.shape[1:])), labels is not None, full_meta)
    return pa.table(_columns(images, labels, index), schema=schema)


class SplitWriter:
    """Appends rows to one split's Parquet file, a full row group at a time, holding at most one group in memory.

    The files are identical to `pq.write_table(split_table(...), row_group_size=ROW_GROUP_SIZE)` of the
    same rows, so streaming and in-memory preparation agree byte for byte.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], with_labels: bool, meta: dict) -> None:
        self.shape, self.with_labels = tuple(shape), with_labels
        self._schema = _schema(int(np.prod(shape)), with_labels, {**meta, "shape": list(shape)})
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")
        self._pending: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]] = []
        self._count = 0
        self.rows = 0

    def append(self, images: np.ndarray, labels: np.ndarray | None, index: np.ndarray) -> None:
        if len(images):
            self._pending.append((images, labels if self.with_labels else None, index))
            self._count += len(images)
        while self._count >= ROW_GROUP_SIZE:
            self._flush(ROW_GROUP_SIZE)

    def _flush(self, n: int) -> None:
        images = np.concatenate([p[0] for p in self._pending])
        index = np.concatenate([p[2] for p in self._pending])
        labels = np.concatenate([p[1] for p in self._pending]) if self.with_labels else None
        table = pa.table(_columns(images[:n], None if labels is None else labels[:n], index[:n]), schema=self._schema)
        self._writer.write_table(table, row_group_size=ROW_GROUP_SIZE)
        self.rows += n
        rest = len(images) - n
        self._pending = [(images[n:], None if labels is None else labels[n:], index[n:])] if rest else []
        self._count = rest

    def close(self) -> None:
        if self._count:
            self._flush(self._count)
        if self.rows == 0:
            # An empty split still gets its (empty) row group, as pq.write_table writes one.
            self._writer.write_table(self._schema.empty_table())
        self._writer.close()


def write_splits(out_dir: Path, tables: dict[str, pa.Table], extra_files: dict[str, bytes]) -> None:
    """Write every split (and small extra files) to a temp dir beside `out_dir`, then swap it in."""
    with staging(out_dir) as tmp:
        for name, table in tables.items():
            pq.write_table(table, tmp / f"{name}.parquet", row_group_size=ROW_GROUP_SIZE, compression="zstd")
        for name, data in extra_files.items():
            (tmp / name).write_bytes(data)


def _open(path: Path) -> pq.ParquetFile:
    path = Path(path)
    if not path.exists():
        raise PreparedDataError(f"{path}: not found; run `dvc repro prepare` to create the prepared splits")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise PreparedDataError(f"{path}: not a readable Parquet file ({err}); rerun `dvc repro prepare`") from None


def _metadata(path: Path, pf: pq.ParquetFile) -> dict:
    raw = (pf.schema_arrow.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise PreparedDataError(f"{path}: no ssgan metadata in the schema; it was not written by `ssgan prepare`")
    return json.loads(raw)


def describe(path: Path) -> tuple[dict, int]:
    """A split's metadata and row count, without reading its images (checks that it exists and parses)."""
    pf = _open(path)
    return _metadata(path, pf), pf.metadata.num_rows


def decode_images(table: pa.Table, meta: dict) -> np.ndarray:
    """The `image` column of a split's rows (a table or a Ray Data batch) as (N, H, W, C) uint8."""
    shape = tuple(meta["shape"])
    if table.num_rows == 0:
        return np.zeros((0, *shape), np.uint8)
    col = table.column("image").combine_chunks()
    row = int(np.prod(shape))
    data = np.frombuffer(col.buffers()[1], dtype=np.uint8)[col.offset * row:(col.offset + len(col)) * row]
    return data.reshape(-1, *shape).copy()


def read_split(path: Path, rank: int = 0, world_size: int = 1) -> Split:
    """Read a split, or only this rank's contiguous share of its rows (the row groups that hold them)."""
    pf = _open(path)
    meta = _metadata(path, pf)
    n = pf.metadata.num_rows
    start, stop = (n * rank) // world_size, (n * (rank + 1)) // world_size
    groups, offsets, first = [], [], 0
    for g in range(pf.num_row_groups):
        size = pf.metadata.row_group(g).num_rows
        if first < stop and first + size > start:
            groups.append(g)
            offsets.append(first)
        first += size
    try:
        table = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
    except (pa.ArrowException, OSError) as err:
        raise PreparedDataError(f"{path}: corrupt Parquet data ({err}); rerun `dvc repro prepare`") from None
    if groups:
        table = table.slice(start - offsets[0], stop - start)
    labels = table.column("label").to_numpy().astype(np.int64) if "label" in table.column_names else None
    if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= meta["num_classes"]):
        raise PreparedDataError(f"{path}: labels outside 0..{meta['num_classes'] - 1}; rerun `dvc repro prepare`")
    return Split(images=decode_images(table, meta), labels=labels, meta=meta)


def check_prepared(data_dir: Path) -> None:
    """Fail early (before Ray starts) if a split is missing or unreadable; the error names the file."""
    for name in SPLITS:
        describe(Path(data_dir) / f"{name}.parquet")
