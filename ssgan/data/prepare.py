"""The prepare stage: load a source, split it, write the Parquet splits, summary.json and preview.png."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ssgan.config import DataConfig
from ssgan.data import sources
from ssgan.data.parquet import split_table, write_splits
from ssgan.data.splits import make_splits
from ssgan.fileio import json_bytes
from ssgan.images import grid_png


def prepare(cfg: DataConfig, out_dir: Path) -> dict:
    """Load the source, split it, and write the four Parquet splits, summary.json and preview.png."""
    ds = sources.load(cfg.source)
    splits = make_splits(ds.labels, ds.num_classes, cfg.n_labeled_per_class, cfg.val_size, cfg.test_size, cfg.seed)
    meta = {"num_classes": ds.num_classes, "class_names": list(ds.class_names), "source": ds.source, "seed": cfg.seed}
    tables, summary = {}, {"source": ds.source, "image_shape": list(ds.images.shape[1:]), "splits": {}}
    for name, idx in splits.as_dict().items():
        labels = None if name == "unlabeled" else ds.labels[idx]
        tables[name] = split_table(ds.images[idx], labels, idx, {**meta, "split": name})
        counts = np.bincount(ds.labels[idx], minlength=ds.num_classes)
        summary["splits"][name] = {"total": int(len(idx)),
                                   "per_class": {c: int(n) for c, n in zip(ds.class_names, counts)}}
    preview = ds.images[splits.labeled[np.argsort(ds.labels[splits.labeled], kind="stable")]]
    write_splits(out_dir, tables, {"summary.json": json_bytes(summary),
                                   "preview.png": grid_png(preview, rows=ds.num_classes, scale=4)})
    return summary
