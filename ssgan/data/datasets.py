"""The published benchmark datasets: where their files come from (checksums as published) and which reader reads them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ssgan.config import DataConfig
from ssgan.data import cifar, idx, svhn
from ssgan.data.catalog import Catalog, DataSourceError
from ssgan.data.download import Remote, fetch
from ssgan.data.transform import fit_array, mismatch, target_shape

_MNIST = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/")
_SVHN = "http://ufldl.stanford.edu/housenumbers/"


def _remotes(prefix: str, bases: tuple[str, ...], md5s: dict[str, str]) -> dict[str, Remote]:
    return {name: Remote(f"{prefix}/{name}", tuple(b + name for b in bases), f"md5:{md5}") for name, md5 in md5s.items()}


REMOTES: dict[str, dict[str, Remote]] = {
    "mnist": _remotes("mnist", _MNIST, {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}),
    "fashion_mnist": _remotes("fashion_mnist", _FASHION, {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}),
    "cifar10": {"cifar-10-python.tar.gz": Remote("cifar10/cifar-10-python.tar.gz",
                                                 ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                                                 "md5:c58f30108f718f92721af3b95e74349a")},
    "svhn": _remotes("svhn", (_SVHN,), {
        "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
        "extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7"}),
}
# Offline first: Debian's dataset-fashion-mnist package installs the same IDX files here.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_IDX_NAMES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
              "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _local_or_fetch(source: str, name: str, cfg: DataConfig) -> Path:
    if source == "fashion_mnist" and (DEBIAN_FASHION_MNIST / name).is_file():
        # Installed by the package manager (which checked it); Debian recompressed them, so the
        # published .gz checksums do not apply. summary.json records their sha256.
        return DEBIAN_FASHION_MNIST / name
    return fetch(REMOTES[source][name], Path(cfg.cache_dir))


def idx_catalog(parts: list[idx.IdxPart], name: str, class_names: tuple[str, ...] | None, cfg: DataConfig) -> Catalog:
    labels, native, checksums = idx.check_parts(parts)
    all_labels = np.concatenate(labels)
    if class_names is None:
        class_names = tuple(str(k) for k in range(int(all_labels.max(initial=0)) + 1))
    target = target_shape(native, cfg.image_size, cfg.channels)
    if not cfg.resize and target != native:
        raise mismatch(str(parts[0].images), native, target)

    def chunks():
        for part in parts:
            for images in idx.iter_images(part.images, checksums):
                yield fit_array(images, target, cfg.resize, str(part.images))

    test = np.concatenate([np.full(len(lab), p.is_test) for lab, p in zip(labels, parts)])
    return Catalog(name, all_labels, class_names, target, chunks, checksums, official_test=test)


def mnist_like(cfg: DataConfig) -> Catalog:
    source = cfg.source
    parts = [idx.IdxPart(*(_local_or_fetch(source, n, cfg) for n in _IDX_NAMES[p]), is_test=p == "t10k") for p in _IDX_NAMES]
    names = FASHION_CLASSES if source == "fashion_mnist" else tuple(str(d) for d in range(10))
    return idx_catalog(parts, source, names, cfg)


def idx_dir(cfg: DataConfig) -> Catalog:
    return idx_catalog(idx.find_parts(Path(cfg.path)), "idx", None, cfg)


def cifar10(cfg: DataConfig) -> Catalog:
    remote = REMOTES["cifar10"]["cifar-10-python.tar.gz"]
    path = fetch(remote, Path(cfg.cache_dir))
    labels, test = cifar.read_labels(path)
    native = (cifar.SIDE, cifar.SIDE, 3)
    target = _checked_target(native, cfg, path)
    chunks = lambda: (fit_array(x, target, cfg.resize, str(path)) for x in cifar.iter_images(path))  # noqa: E731
    return Catalog("cifar10", labels, cifar.CLASS_NAMES, target, chunks, {path.name: remote.checksum}, official_test=test)


def svhn_sets(cfg: DataConfig) -> Catalog:
    names = ["train_32x32.mat", *(["extra_32x32.mat"] if cfg.svhn_extra else []), "test_32x32.mat"]
    paths = [fetch(REMOTES["svhn"][n], Path(cfg.cache_dir)) for n in names]
    labels = [svhn.read_labels(p) for p in paths]
    shapes = {p: svhn.image_shape(p) for p in paths}
    for p, lab in zip(paths, labels):
        if shapes[p][0] != len(lab):
            raise DataSourceError(f"{p}: {shapes[p][0]} images in X but {len(lab)} labels in y")
    target = _checked_target(shapes[paths[0]][1:], cfg, paths[0])

    def chunks():
        for p in paths:
            for images in svhn.iter_images(p):
                yield fit_array(images, target, cfg.resize, str(p))

    test = np.concatenate([np.full(len(lab), p.name.startswith("test")) for p, lab in zip(paths, labels)])
    checksums = {n: REMOTES["svhn"][n].checksum for n in names}
    return Catalog("svhn", np.concatenate(labels), svhn.CLASS_NAMES, target, chunks, checksums, official_test=test)


def _checked_target(native: tuple[int, int, int], cfg: DataConfig, path: Path) -> tuple[int, int, int]:
    target = target_shape(tuple(native), cfg.image_size, cfg.channels)
    if not cfg.resize and target != tuple(native):
        raise mismatch(str(path), tuple(native), target)
    return target
