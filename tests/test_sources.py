"""Each source, read from tiny fixture files in its real format; downloads from file:// URLs only."""
import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from ssgan.config import DataConfig
from ssgan.data import cifar, datasets, download, idx, parquet as P, svhn
from ssgan.data.catalog import DataSourceError
from ssgan.data.prepare import prepare
from ssgan.data.sources import load
from tests import data_fixtures as F


@pytest.fixture
def offline(monkeypatch):
    """No Debian files, and any URL opened is a test failure unless a test allows it."""
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", datasets.Path("/nonexistent"))


def _digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_idx_dir_prepares_with_official_test_and_is_byte_identical(tmp_path):
    F.mnist_like_dir(tmp_path / "src", n_train=60, n_test=20)
    cfg = DataConfig(source="idx", path=str(tmp_path / "src"), n_labeled_per_class=2, val_size=9, seed=1)
    summary = prepare(cfg, tmp_path / "a")
    prepare(cfg, tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    test = P.read_split(tmp_path / "a" / "test.parquet")
    index = pq.read_table(tmp_path / "a" / "test.parquet").column("index").to_numpy()
    assert index.tolist() == list(range(60, 80))  # exactly the t10k rows, after the train rows
    assert np.all(test.images[:, 0, 0, 0] == index)  # the image bytes travelled with their row
    assert {n: s["total"] for n, s in summary["splits"].items()} == {"labeled": 6, "unlabeled": 45, "val": 9, "test": 20}
    assert set(summary["checksums"]) == {f"{p}-{k}-idx{d}-ubyte.gz" for p in ("train", "t10k") for k, d in (("images", 3), ("labels", 1))}
    assert summary["image_shape"] == [6, 6, 1]


def test_streaming_writer_matches_in_memory_table(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "ROW_GROUP_SIZE", 7)
    images = np.arange(30 * 4, dtype=np.uint8).reshape(30, 2, 2, 1)
    labels, index = np.arange(30) % 3, np.arange(30) * 2
    P.write_splits(tmp_path / "mem", {"val": P.split_table(images, labels, index, {"num_classes": 3})}, {})
    writer = P.SplitWriter(tmp_path / "val.parquet", (2, 2, 1), True, {"num_classes": 3})
    for part in np.array_split(np.arange(30), [4, 5, 19]):  # uneven chunks straddling row groups
        writer.append(images[part], labels[part], index[part])
    writer.close()
    assert (tmp_path / "val.parquet").read_bytes() == (tmp_path / "mem" / "val.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "val.parquet").num_row_groups == 5


def test_n_labeled_total_is_class_balanced(tmp_path):
    F.mnist_like_dir(tmp_path / "src", classes=3)
    cfg = DataConfig(source="idx", path=str(tmp_path / "src"), n_labeled=7, val_size=6)
    summary = prepare(cfg, tmp_path / "out")
    assert summary["splits"]["labeled"]["per_class"] == {"0": 3, "1": 2, "2": 2}


def test_resize_and_channels_apply_to_any_source(tmp_path):
    F.mnist_like_dir(tmp_path / "src")
    cat = load(DataConfig(source="idx", path=str(tmp_path / "src"), image_size=4, channels=3))
    images = np.concatenate(list(cat.chunks()))
    assert cat.image_shape == (4, 4, 3) and images.shape == (80, 4, 4, 3)
    assert np.all(images[5] == 5)  # a flat grey image stays that grey in every channel


def test_download_verifies_writes_atomically_and_reuses(tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"published bytes")
    remote = download.Remote("set/remote.bin", (src.as_uri(),), F.md5(src))
    path = download.fetch(remote, tmp_path / "cache")
    assert path.read_bytes() == b"published bytes" and path == tmp_path / "cache" / "set" / "remote.bin"

    def no_network(*args, **kwargs):
        raise AssertionError("a cached file must be reused without downloading")

    assert download.fetch(remote, tmp_path / "cache", opener=no_network) == path


def test_download_falls_back_to_the_next_mirror(tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"x" * 100)
    remote = download.Remote("remote.bin", ((tmp_path / "missing").as_uri(), src.as_uri()), F.md5(src))
    assert download.fetch(remote, tmp_path / "cache").read_bytes() == b"x" * 100


def test_mnist_downloads_into_cache_then_prepares(tmp_path, monkeypatch, offline):
    F.mnist_like_dir(tmp_path / "mirror", classes=10, n_train=80, n_test=20)
    remotes = {name: download.Remote(f"mnist/{name}", ((tmp_path / "mirror" / name).as_uri(),), F.md5(tmp_path / "mirror" / name))
               for name in datasets.REMOTES["mnist"]}
    monkeypatch.setitem(datasets.REMOTES, "mnist", remotes)
    cfg = DataConfig(source="mnist", n_labeled_per_class=1, val_size=10, cache_dir=str(tmp_path / "cache"))
    summary = prepare(cfg, tmp_path / "out")
    assert summary["splits"]["test"]["total"] == 20 and summary["splits"]["unlabeled"]["total"] == 60
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(remotes)


def test_fashion_mnist_uses_the_debian_files_first(tmp_path, monkeypatch):
    F.mnist_like_dir(tmp_path / "debian", classes=10)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    cat = load(DataConfig(source="fashion_mnist", cache_dir=str(tmp_path / "cache")))  # no remote is reachable
    assert len(cat.labels) == 80 and cat.class_names[0] == "T-shirt/top" and cat.official_test.sum() == 20
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(not datasets.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_installed_fashion_mnist_has_70k_images(tmp_path):
    cat = load(DataConfig(source="fashion_mnist", cache_dir=str(tmp_path)))
    assert len(cat.labels) == 70000 and cat.official_test.sum() == 10000 and cat.image_shape == (28, 28, 1)


def test_cifar_archive_reader(tmp_path, monkeypatch):
    archive = F.cifar_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=10)
    labels, test = cifar.read_labels(archive)
    assert len(labels) == 60 and test.sum() == 10 and test[-10:].all()
    images = np.concatenate(list(cifar.iter_images(archive, rows=4)))
    raw = np.random.default_rng(0).integers(0, 256, (10, 3072), dtype=np.uint8)  # data_batch_1
    assert images.shape == (60, 32, 32, 3)
    assert np.array_equal(images[0, :, :, 1].reshape(-1), raw[0, 1024:2048])  # green plane, row-major
    remote = download.Remote("cifar10/cifar-10-python.tar.gz", (archive.as_uri(),), F.md5(archive))
    monkeypatch.setitem(datasets.REMOTES, "cifar10", {"cifar-10-python.tar.gz": remote})
    cat = load(DataConfig(source="cifar10", cache_dir=str(tmp_path / "cache")))
    assert cat.class_names[3] == "cat" and cat.official_test.sum() == 10


def test_cifar_pickle_cannot_run_code(tmp_path):
    import io, pickle, tarfile  # noqa: E401

    payload = pickle.dumps({b"data": __import__("os").system, b"labels": []})
    with tarfile.open(tmp_path / "evil.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(DataSourceError, match="refusing to load"):
        cifar.read_labels(tmp_path / "evil.tar.gz")


@pytest.mark.parametrize("compress", [True, False])
def test_svhn_mat_reader_streams_column_major_images(tmp_path, compress):
    expected = F.svhn_mat(tmp_path / "train_32x32.mat", n=23, seed=0, compress=compress)
    assert svhn.read_labels(tmp_path / "train_32x32.mat").tolist()[:11] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    images = np.concatenate(list(svhn.iter_images(tmp_path / "train_32x32.mat", rows=5)))
    assert np.array_equal(images, expected)


def test_svhn_source_with_extra(tmp_path, monkeypatch):
    remotes = {}
    for seed, name in enumerate(("train_32x32.mat", "test_32x32.mat", "extra_32x32.mat")):
        F.svhn_mat(tmp_path / name, n=30 + 10 * seed, seed=seed)
        remotes[name] = download.Remote(f"svhn/{name}", ((tmp_path / name).as_uri(),), F.md5(tmp_path / name))
    monkeypatch.setitem(datasets.REMOTES, "svhn", remotes)
    cfg = DataConfig(source="svhn", svhn_extra=True, n_labeled_per_class=1, val_size=10, cache_dir=str(tmp_path / "cache"))
    summary = prepare(cfg, tmp_path / "out")
    assert {n: s["total"] for n, s in summary["splits"].items()} == {"labeled": 10, "unlabeled": 60, "val": 10, "test": 40}
    assert summary["image_shape"] == [8, 8, 3]


def test_image_folder_mixed_sizes_and_formats(tmp_path):
    F.image_tree(tmp_path / "imgs", per_class=6, unlabeled=5)
    cfg = DataConfig(source="image_folder", path=str(tmp_path / "imgs"), image_size=8, channels=3,
                     n_labeled_per_class=2, val_size=2, test_size=2)
    summary = prepare(cfg, tmp_path / "out")
    splits = summary["splits"]
    assert {n: s["total"] for n, s in splits.items()} == {"labeled": 4, "unlabeled": 9, "val": 2, "test": 2}
    assert splits["unlabeled"]["without_label"] == 5 and splits["labeled"]["per_class"] == {"cat": 2, "dog": 2}
    assert set(summary["checksums"]) == {"labeled/", "unlabeled/"}
    unlabeled = P.read_split(tmp_path / "out" / "unlabeled.parquet")
    assert unlabeled.images.shape == (9, 8, 8, 3) and unlabeled.labels is None
    assert (tmp_path / "out" / "preview.png").read_bytes()[:4] == b"\x89PNG"


def test_user_parquet_bytes_and_arrays_with_null_labels(tmp_path):
    labels = [0, 1, 2] * 5 + [None] * 6
    for arrays in (False, True):
        path = F.user_parquet(tmp_path / f"u{arrays}.parquet", labels, arrays=arrays)
        cfg = DataConfig(source="parquet", path=str(path), image_column="img", label_column="y", image_size=5, channels=1,
                         n_labeled_per_class=2, val_size=3, test_size=3)
        summary = prepare(cfg, tmp_path / f"out{arrays}")
        assert summary["splits"]["unlabeled"]["total"] == 9 and summary["splits"]["unlabeled"]["without_label"] == 6
    a = P.read_split(tmp_path / "outFalse" / "val.parquet").images
    b = P.read_split(tmp_path / "outTrue" / "val.parquet").images
    assert np.array_equal(a, b)  # PNG bytes and raw arrays decode to the same pixels
    meta = json.loads((tmp_path / "outTrue" / "summary.json").read_text())
    assert meta["splits"]["labeled"]["per_class"] == {"0": 2, "1": 2, "2": 2}
