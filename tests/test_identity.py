"""One identity for prepared data: keys agree exactly when the files they cover do."""
import pyarrow.parquet as pq

from ssgan.config import DataConfig
from ssgan.data.download import file_digest
from ssgan.data.identity import TRAINING_SPLITS, splits_digest, val_key
from ssgan.data.prepare import prepare
from ssgan.tracking.promote import data_key
from ssgan.quality.reference import reference_key
from ssgan.driver.resume import run_key
from tests.conftest import TINY_PARAMS


def _prepare(tmp_path, name, **changes):
    prepare(DataConfig(**{**TINY_PARAMS["data"], **changes}), tmp_path / name)
    return tmp_path / name


def test_another_test_size_gives_other_val_images_and_another_promotion_key(prepared_dir, tmp_path):
    # prepare draws test before val, so test_size alone changes the val set (the reported bug).
    other = _prepare(tmp_path, "other", test_size=TINY_PARAMS["data"]["test_size"] + 50)
    assert (other / "val.parquet").read_bytes() != (prepared_dir / "val.parquet").read_bytes()
    assert data_key(other) != data_key(prepared_dir)
    assert data_key(prepared_dir).startswith("digits-val100-")


def test_added_labels_keep_the_promotion_key_and_change_the_training_key(prepared_dir, tmp_path, tiny_config):
    rows = pq.read_table(prepared_dir / "unlabeled.parquet", columns=["index"]).column("index").to_pylist()[:4]
    (tmp_path / "extra.csv").write_text("row_id,label\n" + "".join(f"{r},1\n" for r in rows))
    more = _prepare(tmp_path, "more", extra_labels=str(tmp_path / "extra.csv"))
    assert data_key(more) == data_key(prepared_dir)  # same val images: the new model must beat the champion
    assert splits_digest(more, TRAINING_SPLITS) != splits_digest(prepared_dir, TRAINING_SPLITS)
    assert run_key(tiny_config, more) != run_key(tiny_config, prepared_dir)
    assert reference_key(more, 5, 0) != reference_key(prepared_dir, 5, 0)


def test_keys_are_the_file_md5s_dvc_records(prepared_dir):
    assert val_key(prepared_dir).endswith(file_digest(prepared_dir / "val.parquet", "md5")[:12])


def test_the_run_key_covers_the_training_code(prepared_dir, tiny_config):
    assert run_key(tiny_config, prepared_dir, code="a") != run_key(tiny_config, prepared_dir, code="b")
    assert run_key(tiny_config, prepared_dir, code="a") == run_key(tiny_config, prepared_dir, code="a")


def test_each_split_is_read_once_until_it_changes(tmp_path, monkeypatch):
    import os

    from ssgan.data import identity

    reads = []
    monkeypatch.setattr(identity, "file_digest", lambda path, algo: reads.append(path) or file_digest(path, algo))
    split = tmp_path / "val.parquet"
    split.write_bytes(b"first")
    first = [identity.split_md5(tmp_path, "val") for _ in range(3)]
    assert len(reads) == 1 and first == [file_digest(split, "md5")] * 3
    split.write_bytes(b"other")  # same size: the new mtime is what marks it rewritten
    os.utime(split, ns=(1, 1))
    assert identity.split_md5(tmp_path, "val") == file_digest(split, "md5") != first[0] and len(reads) == 2
