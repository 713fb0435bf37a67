"""One identity for prepared data: which bytes a key stands for.

Every key is built from the md5 of split files (the md5 DVC records for each file of data/prepared,
and the digest lineage gives each split's MLflow dataset), so two keys agree exactly when the files
they cover are byte-identical:

- `val_key`: promotion compares val errors only between models measured on the same val images
  (docs/registry.md, "same data"): `<source>-val<N>-<md5 prefix of val.parquet>`. `ssgan add-labels`
  leaves it unchanged; another `data.test_size`, `data.seed`, source or val size changes it.
- `splits_digest`: everything a cache or a resume depends on, over the splits it reads (training:
  labeled, unlabeled, val; the reference classifier: labeled, unlabeled, test).
- `content_digest`: the decoded rows themselves (images, labels, metadata). The driver computes it
  for what it read from the files above and sends it with the data; a rank recomputes it over what
  reached it through Ray, so a worker trains only on the rows the run key stands for.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from ssgan.data.download import file_digest
from ssgan.data.parquet import Split, describe

SPLITS = ("labeled", "unlabeled", "val", "test")
TRAINING_SPLITS = ("labeled", "unlabeled", "val")  # what training reads (test is evaluate's)


def split_md5(data_dir: Path, split: str) -> str:
    path = (Path(data_dir) / f"{split}.parquet").resolve()
    stat = path.stat()
    return _md5_of(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _md5_of(path: str, size: int, mtime_ns: int) -> str:
    # One training keys its run, its reference cache and its lineage on the same splits: read each
    # file once per process. Size and mtime in the key make a rewritten file a new entry.
    return file_digest(Path(path), "md5")


def splits_digest(data_dir: Path, splits: tuple[str, ...] = SPLITS) -> str:
    """md5 over the named splits' file md5s."""
    text = "\n".join(f"{name} {split_md5(data_dir, name)}" for name in splits)
    return hashlib.md5(text.encode()).hexdigest()


def val_key(data_dir: Path) -> str:
    """e.g. digits-val200-3f2a9c01b7e4: a readable prefix for people, the val file's md5 for the gate."""
    meta, rows = describe(Path(data_dir) / "val.parquet")
    return f"{meta['source']}-val{rows}-{split_md5(data_dir, 'val')[:12]}"


def content_digest(split: Split) -> str:
    """blake2b over a split's metadata, image shape and bytes, and labels (absent for the unlabeled split)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(split.meta, sort_keys=True).encode())
    h.update(repr(split.images.shape).encode())
    h.update(memoryview(np.ascontiguousarray(split.images)).cast("B"))
    if split.labels is None:
        h.update(b"no labels")
    else:
        h.update(memoryview(np.ascontiguousarray(split.labels, dtype=np.int64)).cast("B"))
    return h.hexdigest()
