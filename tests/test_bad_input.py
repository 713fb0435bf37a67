"""Every bad input: one line naming the file or key and the fault, exit 1, and nothing left in the output dir."""
import gzip

import numpy as np
import pytest

from pipelines.cli import main
from ssgan.data import datasets, download
from tests import data_fixtures as F


def _fails(tmp_path, capsys, *fragments, **data):
    """Run `ssgan prepare` on `data`; assert a one-line error containing `fragments` and no output left behind."""
    out = tmp_path / "out" / "prepared"
    params = F.params_file(tmp_path / "params.yaml", **data)
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--params", str(params), "--out", str(out)])
    assert exit_info.value.code == 1
    lines = [l for l in capsys.readouterr().err.strip().splitlines() if not l.startswith("[ssgan] downloading")]
    assert len(lines) == 1 and lines[0].startswith("ssgan prepare: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []  # no splits, no temp dirs
    return lines[0]


def _idx(tmp_path, **kw):
    return F.mnist_like_dir(tmp_path / "src", **kw)


SMALL = dict(n_labeled_per_class=2, val_size=9)


def test_missing_path(tmp_path, capsys):
    _fails(tmp_path, capsys, f"{tmp_path / 'nowhere'}: not found", source="idx", path=str(tmp_path / "nowhere"))


def test_checksum_mismatch_of_a_download_leaves_no_cache_file(tmp_path, capsys, monkeypatch):
    src = tmp_path / "cifar.tar.gz"
    src.write_bytes(b"not the published archive")
    remote = download.Remote("cifar10/cifar-10-python.tar.gz", (src.as_uri(),), "md5:" + "0" * 32)
    monkeypatch.setitem(datasets.REMOTES, "cifar10", {"cifar-10-python.tar.gz": remote})
    _fails(tmp_path, capsys, src.as_uri(), "checksum mismatch", source="cifar10", cache_dir=str(tmp_path / "cache"))
    assert list((tmp_path / "cache" / "cifar10").iterdir()) == []


def test_checksum_mismatch_of_a_cached_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "cache" / "cifar10").mkdir(parents=True)
    (tmp_path / "cache" / "cifar10" / "cifar-10-python.tar.gz").write_bytes(b"corrupted")
    _fails(tmp_path, capsys, "cifar-10-python.tar.gz: checksum mismatch", "delete it", source="cifar10",
           cache_dir=str(tmp_path / "cache"))


def test_truncated_gz(tmp_path, capsys):
    src = _idx(tmp_path)
    path = src / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    _fails(tmp_path, capsys, f"{path}: truncated", source="idx", path=str(src), **SMALL)


def test_gz_that_is_not_gzip(tmp_path, capsys):
    src = _idx(tmp_path)
    path = src / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.decompress(path.read_bytes()))
    _fails(tmp_path, capsys, f"{path}: not a gzip file", source="idx", path=str(src), **SMALL)


def test_idx_wrong_magic(tmp_path, capsys):
    src = _idx(tmp_path, gz=False)
    F.write_idx(src / "t10k-images-idx3-ubyte", np.zeros((20, 6, 6), np.uint8), magic=b"\x00\x00\x0d\x03")
    _fails(tmp_path, capsys, "t10k-images-idx3-ubyte: wrong IDX magic number 0x00000d03", source="idx", path=str(src), **SMALL)


def test_idx_image_label_count_mismatch(tmp_path, capsys):
    src = _idx(tmp_path)
    F.write_idx(src / "train-labels-idx1-ubyte.gz", np.zeros(59, np.uint8))
    _fails(tmp_path, capsys, "train-images-idx3-ubyte.gz: 60 images but train-labels-idx1-ubyte.gz has 59 labels",
           source="idx", path=str(src), **SMALL)


def test_idx_labels_outside_the_classes(tmp_path, capsys, monkeypatch):
    F.mnist_like_dir(tmp_path / "mirror", classes=12)  # MNIST has 10 classes
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "mirror")
    _fails(tmp_path, capsys, "fashion_mnist: labels must lie in 0..9", source="fashion_mnist", **SMALL)


def _folder_params(tmp_path, **extra):
    return dict(source="image_folder", path=str(tmp_path / "imgs"), image_size=8, channels=3,
                n_labeled_per_class=2, val_size=2, test_size=2, **extra)


def test_undecodable_image_in_folder(tmp_path, capsys):
    F.image_tree(tmp_path / "imgs")
    bad = tmp_path / "imgs" / "unlabeled" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    _fails(tmp_path, capsys, f"{bad}: not a decodable image", **_folder_params(tmp_path))


def test_class_folder_with_too_few_images(tmp_path, capsys):
    F.image_tree(tmp_path / "imgs", per_class=6)
    for extra in sorted((tmp_path / "imgs" / "labeled" / "dog").iterdir())[3:]:
        extra.unlink()
    message = _fails(tmp_path, capsys, f"class folder {tmp_path / 'imgs' / 'labeled' / 'dog'} has only 3 examples",
                     "n_labeled_per_class (2) + its val share (1) + its test share (1)", **_folder_params(tmp_path))
    assert message.startswith("ssgan prepare: error: data.n_labeled_per_class: ")


def test_shape_mismatch_without_resizing(tmp_path, capsys):
    F.image_tree(tmp_path / "imgs")
    _fails(tmp_path, capsys, "labeled/cat/0.png: image is 7x10x1", "8x8x3 and data.resize is false",
           **_folder_params(tmp_path, resize=False))
    _idx(tmp_path)
    _fails(tmp_path, capsys, "train-images-idx3-ubyte.gz: image is 6x6x1", "5x5x1",
           source="idx", path=str(tmp_path / "src"), image_size=5, resize=False, **SMALL)


def _parquet_params(path):
    return dict(source="parquet", path=str(path), image_column="img", label_column="y", image_size=5, channels=1,
                n_labeled_per_class=1, val_size=2, test_size=2)


def test_parquet_labels_outside_range(tmp_path, capsys):
    path = F.user_parquet(tmp_path / "u.parquet", [0, 1, 3] * 4)
    _fails(tmp_path, capsys, f"{path}: label 3 at row 2 is outside 0..2", **_parquet_params(path))


def test_parquet_non_integer_labels(tmp_path, capsys):
    path = F.user_parquet(tmp_path / "u.parquet", [0.0, 1.0, 0.5] * 4)
    _fails(tmp_path, capsys, f"{path}: non-integer label 0.5", **_parquet_params(path))
    path = F.user_parquet(tmp_path / "s.parquet", ["cat", "dog"] * 6)
    _fails(tmp_path, capsys, f"{path}: label column 'y' has type string", **_parquet_params(path))


def test_file_that_is_not_parquet(tmp_path, capsys):
    path = tmp_path / "u.parquet"
    path.write_text("index,image,label\n")
    _fails(tmp_path, capsys, f"{path}: not a Parquet file", **_parquet_params(path))


def test_unknown_data_key_and_missing_path_key(tmp_path, capsys):
    _fails(tmp_path, capsys, "data.image_dir: unknown key", source="digits", image_dir="x")
    _fails(tmp_path, capsys, "data.path: got None; allowed: a path when data.source is idx", source="idx")
