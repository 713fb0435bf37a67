"""Tiny source files in each real on-disk format, for the data tests (no network)."""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.io
import yaml
from PIL import Image


def idx_bytes(array: np.ndarray, magic: bytes | None = None) -> bytes:
    head = magic or bytes([0, 0, 0x08, array.ndim])
    return head + struct.pack(f">{array.ndim}I", *array.shape) + np.ascontiguousarray(array, np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, magic: bytes | None = None) -> Path:
    data = idx_bytes(array, magic)
    # mtime=0: the same bytes every time, so checksums in tests are stable.
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def mnist_like_dir(root: Path, n_train: int = 60, n_test: int = 20, shape=(6, 6), classes: int = 3, gz: bool = True) -> Path:
    """train-* and t10k-* IDX pairs; image i is filled with i so rows are traceable."""
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, n, offset in (("train", n_train, 0), ("t10k", n_test, n_train)):
        images = (np.arange(offset, offset + n, dtype=np.int64) % 256).astype(np.uint8)[:, None, None] * np.ones(shape, np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", (np.arange(n) % classes).astype(np.uint8))
    return root


def md5(path: Path) -> str:
    return f"md5:{hashlib.md5(path.read_bytes()).hexdigest()}"


def cifar_archive(path: Path, per_batch: int = 10) -> Path:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    with tarfile.open(path, "w:gz") as tar:
        for b, name in enumerate(names):
            data = np.random.default_rng(b).integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            payload = pickle.dumps({b"data": data, b"labels": [(b + i) % 10 for i in range(per_batch)]}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def svhn_mat(path: Path, n: int, seed: int, compress: bool = True) -> np.ndarray:
    """An SVHN-layout .mat file (X: H x W x 3 x N, y: N x 1 with 10 for digit 0); returns images as N x H x W x 3."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8)[:, None]
    scipy.io.savemat(path, {"X": images.transpose(1, 2, 3, 0), "y": y}, do_compression=compress)
    return images


def image_tree(root: Path, per_class: int = 6, unlabeled: int = 5) -> Path:
    """labeled/{cat,dog}/ and unlabeled/ with PNG and JPEG files of mixed sizes and modes."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog")):
        (root / "labeled" / name).mkdir(parents=True)
        for i in range(per_class):
            size = (10 + 3 * i, 7 + 2 * i)
            img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
            if i % 2:
                img.save(root / "labeled" / name / f"{i}.jpg", quality=90)
            else:
                img.convert("L").save(root / "labeled" / name / f"{i}.png")
    (root / "unlabeled").mkdir()
    for i in range(unlabeled):
        Image.fromarray(rng.integers(0, 256, (9 + i, 12, 3), dtype=np.uint8)).convert("RGBA").save(root / "unlabeled" / f"u{i}.png")
    return root


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def user_parquet(path: Path, labels: list, n: int | None = None, arrays: bool = False) -> Path:
    n = len(labels) if n is None else n
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (5, 5), dtype=np.uint8) for _ in range(n)]
    column = [img.tolist() for img in images] if arrays else [png_bytes(img) for img in images]
    pq.write_table(pa.table({"img": column, "y": pa.array(labels)}), path)
    return path


def params_file(params_path: Path, **data) -> Path:
    params_path.write_text(yaml.safe_dump({"data": data}))
    return params_path
