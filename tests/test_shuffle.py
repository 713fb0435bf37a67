"""The unlabeled split is written in a seeded random order, in bounded memory, so rank shards are fair samples."""
import numpy as np
import pyarrow.parquet as pq
import pytest

from ssgan.config import DataConfig
from ssgan.data.parquet import read_split
from ssgan.data.prepare import prepare
from ssgan.data.shuffle import ShufflingWriter, shuffled_order
from tests import data_fixtures as F


class Collect:
    def __init__(self):
        self.parts, self.closed = [], False

    def append(self, images, labels, index):
        self.parts.append((images, labels, index))

    def close(self):
        self.closed = True

    def rows(self):
        return [np.concatenate([p[i] for p in self.parts]) for i in (0, 1, 2)]


def test_shuffled_order_is_a_seeded_permutation():
    rows = np.array([3, 9, 4, 20, 7])
    order = shuffled_order(rows, 1)
    assert sorted(order) == sorted(rows)
    np.testing.assert_array_equal(order, shuffled_order(rows[::-1], 1))  # depends on the ids, not their order
    assert any(not np.array_equal(order, shuffled_order(rows, s)) for s in (2, 3, 4))


@pytest.mark.parametrize("bucket_bytes", [1, 40, 10**9])  # one row per bucket, a few buckets, one bucket
def test_writer_emits_the_shuffled_order_whatever_the_bucket_size(tmp_path, bucket_bytes):
    rows = np.arange(0, 60, 2)  # source row ids of this split
    images = (rows[:, None, None, None] * np.ones((1, 2, 2, 1))).astype(np.uint8)
    out = Collect()
    writer = ShufflingWriter(out, rows, seed=5, work_dir=tmp_path / "w", row_bytes=4, bucket_bytes=bucket_bytes)
    for chunk in np.array_split(np.arange(len(rows)), 4):  # streamed in source order, chunk by chunk
        writer.append(images[chunk], rows[chunk] % 3, rows[chunk])
    writer.close()
    got_images, got_labels, got_index = out.rows()
    np.testing.assert_array_equal(got_index, shuffled_order(rows, 5))
    np.testing.assert_array_equal(got_images[:, 0, 0, 0], got_index)  # each image travelled with its row
    np.testing.assert_array_equal(got_labels, got_index % 3)
    assert out.closed and not (tmp_path / "w").exists()  # the temp buckets are gone


def test_writer_refuses_a_row_of_another_split(tmp_path):
    writer = ShufflingWriter(Collect(), np.array([1, 2, 3]), 0, tmp_path / "w", row_bytes=1)
    with pytest.raises(ValueError, match="not in this split"):
        writer.append(np.zeros((1, 1, 1, 1), np.uint8), None, np.array([7]))


def test_rank_shards_of_a_class_sorted_source_are_fair_samples(tmp_path):
    """A source stored class by class (as an image folder is): each half of the unlabeled split holds
    every class in about its share. In source order the first half would hold classes 0 and 1 only."""
    src = tmp_path / "src"
    F.mnist_like_dir(src, n_train=120, n_test=10, classes=3)
    labels = np.repeat(np.arange(3), 40).astype(np.uint8)  # train rows sorted by class
    F.write_idx(src / "train-labels-idx1-ubyte.gz", labels)
    cfg = DataConfig(source="idx", path=str(src), n_labeled_per_class=2, val_size=6, seed=0)
    prepare(cfg, tmp_path / "p")
    path = tmp_path / "p" / "unlabeled.parquet"
    index = pq.read_table(path, columns=["index"]).column("index").to_numpy()
    assert not np.all(np.diff(index) > 0)  # not in source order
    n = len(index)
    for rank in (0, 1):
        shard = read_split(path, rank, 2).images[:, 0, 0, 0]  # image i is filled with its row id i
        counts = np.bincount(labels[shard], minlength=3)
        assert counts.min() >= 0.6 * (n / 2 / 3), counts
    prepare(cfg, tmp_path / "again")
    assert (tmp_path / "again" / "unlabeled.parquet").read_bytes() == path.read_bytes()  # seeded: reproducible
