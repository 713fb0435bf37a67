import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from ssgan.config import DataConfig
from ssgan.data import parquet as P
from ssgan.data.prepare import prepare
from ssgan.data.splits import SplitError, make_splits, proportional_counts


def _labels():
    return np.repeat(np.arange(4), [40, 30, 20, 10])


def test_splits_disjoint_cover_and_counts():
    labels = _labels()
    s = make_splits(labels, 4, n_labeled_per_class=2, val_size=10, test_size=20, seed=1)
    parts = list(s.as_dict().values())
    joined = np.concatenate(parts)
    assert len(joined) == len(np.unique(joined)) == len(labels)  # disjoint and complete
    assert len(s.test) == 20 and len(s.val) == 10
    assert np.bincount(labels[s.labeled], minlength=4).tolist() == [2, 2, 2, 2]


def test_splits_are_stratified():
    labels = _labels()
    s = make_splits(labels, 4, 2, val_size=10, test_size=20, seed=1)
    assert np.bincount(labels[s.test], minlength=4).tolist() == [8, 6, 4, 2]
    assert np.bincount(labels[s.val], minlength=4).tolist() == [4, 3, 2, 1]


def test_splits_are_deterministic_and_seeded():
    labels = _labels()
    a, b = make_splits(labels, 4, 2, 10, 20, seed=1), make_splits(labels, 4, 2, 10, 20, seed=1)
    c = make_splits(labels, 4, 2, 10, 20, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a.as_dict().values(), b.as_dict().values()))
    assert not np.array_equal(a.test, c.test)


def test_proportional_counts_sum_exactly():
    counts = proportional_counts(np.array([5, 5, 5]), 7)
    assert counts.sum() == 7 and counts.max() - counts.min() <= 1


def test_too_few_examples_is_a_clear_error():
    with pytest.raises(SplitError, match="class 3 has only"):
        make_splits(_labels(), 4, n_labeled_per_class=8, val_size=10, test_size=20, seed=0)
    with pytest.raises(SplitError, match="must leave unlabeled data"):
        make_splits(_labels(), 4, n_labeled_per_class=2, val_size=50, test_size=50, seed=0)


def _digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_prepare_writes_parquet_with_schema_and_is_byte_identical(tmp_path):
    cfg = DataConfig(n_labeled_per_class=2, val_size=50, test_size=60, seed=3)
    prepare(cfg, tmp_path / "a")
    prepare(cfg, tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    files = {p.name for p in (tmp_path / "a").iterdir()}
    assert files == {"labeled.parquet", "unlabeled.parquet", "val.parquet", "test.parquet", "summary.json", "preview.png"}
    assert "label" not in pq.read_schema(tmp_path / "a" / "unlabeled.parquet").names
    labeled = P.read_split(tmp_path / "a" / "labeled.parquet")
    assert labeled.images.shape == (20, 8, 8, 1) and labeled.images.dtype == np.uint8
    assert labeled.meta["num_classes"] == 10 and labeled.meta["source"] == "digits" and labeled.meta["seed"] == 3
    assert labeled.meta["class_names"] == [str(i) for i in range(10)]
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["splits"]["labeled"]["per_class"]["7"] == 2
    assert sum(s["total"] for s in summary["splits"].values()) == 1797
    # Provenance: no source row appears in two splits.
    idx = [pq.read_table(tmp_path / "a" / f"{n}.parquet").column("index").to_numpy() for n in P.SPLITS]
    assert len(np.unique(np.concatenate(idx))) == 1797


def test_shards_partition_the_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "ROW_GROUP_SIZE", 7)  # several row groups, shards straddling them
    images = np.arange(50 * 4, dtype=np.uint8).reshape(50, 2, 2, 1)
    P.write_splits(tmp_path / "d", {"unlabeled": P.split_table(images, None, np.arange(50), {"num_classes": 2})}, {})
    path = tmp_path / "d" / "unlabeled.parquet"
    shards = [P.read_split(path, r, 3).images for r in range(3)]
    assert [len(s) for s in shards] == [16, 17, 17]
    assert np.array_equal(np.concatenate(shards), images)


def test_missing_split_names_file_and_fix(tmp_path):
    with pytest.raises(P.PreparedDataError, match=r"labeled.parquet: not found; run `dvc repro prepare`"):
        P.read_split(tmp_path / "labeled.parquet")


def test_corrupt_parquet_is_a_clear_error(tmp_path):
    bad = tmp_path / "val.parquet"
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(P.PreparedDataError, match="val.parquet: not a readable Parquet file"):
        P.read_split(bad)


def test_failed_write_leaves_previous_output_intact(tmp_path):
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "keep.txt").write_text("old")

    class Boom:  # a table pyarrow cannot write
        pass

    with pytest.raises(Exception):
        P.write_splits(out, {"labeled": Boom()}, {})
    assert (out / "keep.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]  # no temp dir left behind
