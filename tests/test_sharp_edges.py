"""The review's sharp edges, each through the function the CLI reaches: one line, nothing run,
nothing outside what the command owns deleted or rewritten."""
import csv
import json
import os
import stat

import numpy as np
import pytest
from PIL import Image

from pipelines import params as P
from ssgan.active.add_labels import read_labels_csv
from ssgan.config import ConfigError, from_mapping
from ssgan.data.catalog import DataSourceError
from ssgan.data.inputs import read_images
from ssgan.driver.resume import remove_run
from ssgan.sweep.tuner import remove_sweep_dirs
from ssgan.util.fileio import atomic_write, staging
from ssgan.util.names import UnsafeNameError, check_name, inside, remove_tree_inside

from tests.conftest import TINY_PARAMS


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    bomb = tmp_path / "params.yaml"
    rows = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    rows += [f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]
    bomb.write_text("\n".join(rows) + "\ntrain:\n  lr: *i\n")  # 9**9 strings once expanded
    with pytest.raises(ConfigError, match=r"aliases \(\*name\) are not allowed in params, line 2"):
        P.load_params(bomb)


@pytest.mark.parametrize("key", ["train.lr", "train.vat_epsilon", "train.unsupervised_weight", "model.input_noise"])
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_numbers_are_refused(key, value):
    section, name = key.split(".")
    params = {**TINY_PARAMS, section: {**TINY_PARAMS.get(section, {}), name: value}}
    with pytest.raises(ConfigError, match=rf"^{key}: got .*; allowed: a finite number$"):
        from_mapping(params)


def test_a_huge_bad_value_makes_a_short_message():
    with pytest.raises(ConfigError) as err:
        from_mapping({**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "lr": ["x"] * 100_000}})
    assert len(str(err.value)) < 300


def test_excel_bom_csv_is_read(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes("\ufeffrow_id,label\n3,1\n5,0\n".encode("utf-8"))
    rows, labels = read_labels_csv(path)
    assert rows.tolist() == [3, 5] and labels.tolist() == [1, 0]


def test_a_fifo_or_folder_named_like_an_image_neither_hangs_nor_tracebacks(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "x.png")
    (folder / "d.png").mkdir()
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(folder / "d.png" / "ok.png")
    skipped = []
    names, images = read_images([str(folder)], (8, 8, 1), skipped)  # would block forever reading the FIFO
    assert names == [str(folder / "d.png" / "ok.png")] and images.shape == (1, 8, 8, 1)
    assert skipped == [f"{folder / 'x.png'}: not a regular file (a pipe, socket or device); give image files"]
    with pytest.raises(DataSourceError, match="not a regular file.*--skip-bad skips such files"):
        read_images([str(folder / "x.png")], (8, 8, 1))


def test_corrupt_image_error_mentions_skip_bad(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataSourceError, match=r"bad.png: not a decodable image .*--skip-bad"):
        read_images([str(tmp_path / "bad.png")], (8, 8, 1))


@pytest.mark.parametrize("name", [".", "..", "../x", "a/b", "", "-x", ".hidden", "a..b", "x" * 101])
def test_bad_names_are_refused(name):
    with pytest.raises(UnsafeNameError, match="not a valid name"):
        check_name(name, "tune --name")


def test_good_names_pass():
    for name in ("sweep-1a2b", "curve_3", "ssgan-0123456789abcdef", "a.b"):
        assert check_name(name, "tune --name") == name


def test_inside_is_strict():
    assert inside("/s/root", "/s/root/run") and inside("bucket/p", "bucket/p/x/y")
    for target in ("/s/root", "/s/root/", "/s/root/..", "/s/root/../x", "/s/other", "/s/root/./"):
        assert not inside("/s/root", target), target


@pytest.mark.parametrize("name", [".", "..", "../outside", "a/../.."])
def test_sweep_and_run_removal_delete_nothing_outside(tmp_path, name):
    storage = tmp_path / "storage"
    (storage / "sweep-a").mkdir(parents=True)
    (storage / "sweep-a" / "keep").write_text("x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep").write_text("x")
    with pytest.raises(UnsafeNameError):
        remove_sweep_dirs(str(storage), name)
    with pytest.raises(UnsafeNameError):
        remove_run(str(storage), name)
    assert (storage / "sweep-a" / "keep").exists() and (tmp_path / "outside" / "keep").exists()


def test_tree_removal_refuses_the_root_and_outside(tmp_path):
    (tmp_path / "work" / "curve-1").mkdir(parents=True)
    for target in (tmp_path / "work", tmp_path / "work" / "..", tmp_path):
        with pytest.raises(UnsafeNameError):
            remove_tree_inside(tmp_path / "work", target)
    remove_tree_inside(tmp_path / "work", tmp_path / "work" / "curve-1")
    assert (tmp_path / "work").exists() and not (tmp_path / "work" / "curve-1").exists()


def _stage(out, files):
    with staging(out) as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text)


def test_staging_replaces_only_what_the_stage_owns(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "cache").mkdir()
    (out / "cache" / "mnist.gz").write_text("downloaded")
    (out / "extra_labels.csv").write_text("row_id,label\n")
    _stage(out, {"labeled.parquet": "v1", "old.json": "v1"})
    _stage(out, {"labeled.parquet": "v2"})
    assert (out / "labeled.parquet").read_text() == "v2"
    assert not (out / "old.json").exists()  # the previous prepare's, no longer written
    assert (out / "cache" / "mnist.gz").read_text() == "downloaded" and (out / "extra_labels.csv").exists()
    with pytest.raises(RuntimeError):
        with staging(out) as tmp:
            (tmp / "labeled.parquet").write_text("half")
            raise RuntimeError("stage failed")
    assert (out / "labeled.parquet").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.owned.json", "data"]  # no temp dir left
    assert json.loads((tmp_path / ".data.owned.json").read_text()) == ["labeled.parquet"]


def test_rewrite_keeps_symlink_and_mode(tmp_path):
    target = tmp_path / "shared" / "preds.csv"
    target.parent.mkdir()
    target.write_text("old")
    os.chmod(target, 0o600)
    link = tmp_path / "preds.csv"
    link.symlink_to(target)
    atomic_write(link, b"new")
    assert link.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
