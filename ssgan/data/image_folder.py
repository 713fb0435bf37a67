"""A user's image tree: `labeled/<class>/...` (class = folder name) and an optional `unlabeled/...`.

Any format Pillow reads, any size and mode: each image is normalised to data.image_size x
data.image_size x data.channels. Files are taken in sorted path order, so the row order (and the
splits) do not depend on the filesystem.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import numpy as np

from ssgan.config import DataConfig
from ssgan.data.catalog import CHUNK_ROWS, UNLABELED, Catalog, DataSourceError
from ssgan.data.transform import decode

# Files operating systems drop into folders; everything else must be an image.
IGNORED = {"Thumbs.db", "desktop.ini"}


def _files(directory: Path) -> list[Path]:
    found = [p for p in directory.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(directory).parts) and p.name not in IGNORED]
    return sorted(found, key=lambda p: p.relative_to(directory).as_posix())


def catalog(cfg: DataConfig) -> Catalog:
    root = Path(cfg.path)
    labeled_dir = root / "labeled"
    if not root.is_dir():
        raise DataSourceError(f"{root}: not found or not a directory (data.path for data.source image_folder)")
    if not labeled_dir.is_dir():
        raise DataSourceError(f"{labeled_dir}: not found; image_folder needs labeled/<class>/ folders (and optionally unlabeled/)")
    classes = sorted(p for p in labeled_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataSourceError(f"{labeled_dir}: {len(classes)} class folder(s); a classifier needs at least 2")
    files, labels = [], []
    for k, folder in enumerate(classes):
        members = _files(folder)
        files += members
        labels += [k] * len(members)
    unlabeled_dir = root / "unlabeled"
    unlabeled = _files(unlabeled_dir) if unlabeled_dir.is_dir() else []
    files += unlabeled
    labels += [UNLABELED] * len(unlabeled)
    target = (cfg.image_size, cfg.image_size, cfg.channels)
    checksums: dict[str, str] = {}
    return Catalog("image_folder", np.asarray(labels, np.int64), tuple(p.name for p in classes), target,
                   lambda: _chunks(root, files, target, cfg.resize, checksums), checksums,
                   class_paths=tuple(str(p) for p in classes))


def _chunks(root: Path, files: list[Path], target: tuple[int, int, int], resize: bool,
            checksums: dict[str, str]) -> Iterator[np.ndarray]:
    # One digest per top folder over (relative path, content): a checksum of the whole tree in summary.json.
    digests = {"labeled/": hashlib.sha256(), "unlabeled/": hashlib.sha256()}
    for start in range(0, len(files), CHUNK_ROWS):
        batch = files[start:start + CHUNK_ROWS]
        out = np.empty((len(batch), *target), np.uint8)
        for i, path in enumerate(batch):
            rel = path.relative_to(root).as_posix()
            try:
                data = path.read_bytes()
            except OSError as err:
                raise DataSourceError(f"{path}: unreadable ({err.strerror})") from None
            top = digests[rel.split("/", 1)[0] + "/"]
            top.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
            out[i] = decode(data, target, resize, str(path))
        yield out
    checksums.update({name: f"sha256:{d.hexdigest()}" for name, d in digests.items()})
