"""The prepare stage: catalogue a source, split it by labels alone, then stream its images into the Parquet splits.

Peak memory is the labels, one decoded chunk, less than one row group per split and one bucket of the
unlabeled shuffle (`ssgan.data.shuffle`), whatever the source's size. Everything goes to a temp dir
that replaces `out_dir` only once all files are complete.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ssgan.config import DataConfig
from ssgan.data import sources
from ssgan.data.catalog import Catalog, DataSourceError
from ssgan.data.parquet import SPLITS, SplitWriter
from ssgan.data.shuffle import ShufflingWriter
from ssgan.data.splits import Splits, add_labeled, make_splits, read_extra_labels
from ssgan.util.fileio import json_bytes, staging
from ssgan.util.images import grid_png

PREVIEW_PER_CLASS = 16  # the preview grid shows at most this many labeled examples per class


def split_catalog(cat: Catalog, cfg: DataConfig) -> Splits:
    return make_splits(cat.labels, cat.num_classes, cfg.n_labeled_per_class, cfg.val_size, cfg.test_size, cfg.seed,
                       n_labeled=cfg.n_labeled, official_test=cat.official_test, class_names=cat.class_names,
                       class_paths=cat.class_paths)


def prepare(cfg: DataConfig, out_dir: Path) -> dict:
    """Write the four Parquet splits, summary.json and preview.png for `cfg` into `out_dir`."""
    cat = sources.load(cfg)
    splits = split_catalog(cat, cfg)
    labels = cat.labels
    if cfg.extra_labels is not None:  # an annotator's labels: those unlabeled rows join the labeled split
        rows, given = read_extra_labels(cfg.extra_labels, cat.num_classes)
        splits = add_labeled(splits, rows)
        labels = cat.labels.copy()
        labels[rows] = given
    splits = splits.as_dict()
    which = np.full(len(cat.labels), -1, np.int8)  # row -> split number
    for s, name in enumerate(SPLITS):
        which[splits[name]] = s
    meta = {"num_classes": cat.num_classes, "class_names": list(cat.class_names), "source": cat.name, "seed": cfg.seed}
    with staging(out_dir) as tmp:
        writers = [SplitWriter(tmp / f"{name}.parquet", cat.image_shape, name != "unlabeled", {**meta, "split": name})
                   for name in SPLITS]
        # Training ranks read contiguous shares of the unlabeled rows: written in a seeded random
        # order, each share is a fair sample whatever the source's order.
        u = SPLITS.index("unlabeled")
        writers[u] = ShufflingWriter(writers[u], splits["unlabeled"], cfg.seed, tmp / ".shuffle",
                                     int(np.prod(cat.image_shape)))
        preview = _stream(cat, labels, which, writers)
        for w in writers:
            w.close()
        summary = _summary(cat, labels, splits)
        (tmp / "summary.json").write_bytes(json_bytes(summary))
        (tmp / "preview.png").write_bytes(grid_png(preview, rows=cat.num_classes, scale=4))
    return summary


def _stream(cat: Catalog, labels: np.ndarray, which: np.ndarray, writers: list[SplitWriter]) -> np.ndarray:
    """Route each decoded chunk's rows (with `labels`) to their split's writer; returns the preview images."""
    labeled = SPLITS.index("labeled")
    preview_rows = _preview_rows(labels, np.flatnonzero(which == labeled))
    preview = np.zeros((len(preview_rows), *cat.image_shape), np.uint8)
    start = 0
    for images in cat.chunks():
        if images.shape[1:] != cat.image_shape:
            raise DataSourceError(f"{cat.name}: images of shape {images.shape[1:]}, expected {cat.image_shape}")
        rows = np.arange(start, start + len(images))
        if rows[-1:].size and rows[-1] >= len(which):
            raise DataSourceError(f"{cat.name}: more images than labels ({len(which)})")
        for s, writer in enumerate(writers):
            mine = which[rows] == s
            if mine.any():
                writer.append(images[mine], labels[rows[mine]], rows[mine])
        hit = np.isin(preview_rows, rows)
        preview[hit] = images[preview_rows[hit] - start]
        start += len(images)
    if start != len(which):
        raise DataSourceError(f"{cat.name}: {start} images for {len(which)} labels")
    return preview


def _preview_rows(labels: np.ndarray, labeled: np.ndarray) -> np.ndarray:
    """Labeled rows grouped by class (stable, so in row order within a class), at most PREVIEW_PER_CLASS each."""
    ordered = labeled[np.argsort(labels[labeled], kind="stable")]
    rank = np.concatenate([np.arange(c) for c in np.bincount(labels[ordered])]) if len(ordered) else ordered
    return ordered[rank < PREVIEW_PER_CLASS]


def _summary(cat: Catalog, labels: np.ndarray, splits: dict[str, np.ndarray]) -> dict:
    summary = {"source": cat.name, "image_shape": list(cat.image_shape), "checksums": dict(cat.checksums), "splits": {}}
    for name in SPLITS:
        idx = splits[name]
        known = labels[idx][labels[idx] >= 0]
        counts = np.bincount(known, minlength=cat.num_classes)
        entry = {"total": int(len(idx)), "per_class": {c: int(n) for c, n in zip(cat.class_names, counts)}}
        if len(known) < len(idx):
            entry["without_label"] = int(len(idx) - len(known))
        summary["splits"][name] = entry
    return summary
