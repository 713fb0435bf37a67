"""Deletions confined to what a command owns: bad run/sweep names refused at the library function the
CLI reaches (nothing outside the storage deleted), and prepare's swap leaving the rest of --out alone."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ssgan.config import Cluster, from_mapping
from ssgan.data.prepare import prepare
from ssgan.driver.resume import prune_runs
from ssgan.sweep import curve as curve_mod
from ssgan.sweep import tune as tune_mod
from ssgan.sweep import tuner
from ssgan.sweep.space import TuneConfig
from ssgan.sweep.trial import TrialSpec
from ssgan.util.fileio import staging
from ssgan.util.names import UnsafeNameError
from tests.conftest import TINY_PARAMS

ROOT = Path(__file__).resolve().parents[1]
BAD = [".", "..", "../x", "a/b", ""]
PARAMS = {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "num_workers": 1},
          "tune": {"num_samples": 1, "epochs": 1, "space": {"train.lr": {"grid": [0.01]}}},
          "curve": {"labels": [1], "seeds": 1, "modes": ["supervised"], "epochs": 1}}


@pytest.fixture
def storage(tmp_path, monkeypatch):
    """A storage with someone's run in it, a sentinel beside it, and no Ray."""
    monkeypatch.setattr(tuner, "connect", lambda *_: pytest.fail("Ray started"))
    (tmp_path / "ray" / "ssgan-0123456789abcdef").mkdir(parents=True)
    (tmp_path / "ray" / "ssgan-0123456789abcdef" / "sentinel").write_text("x")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "sentinel").write_text("outside")
    return tmp_path / "ray"


def _untouched(storage):
    return ((storage / "ssgan-0123456789abcdef" / "sentinel").exists()
            and (storage.parent / "x" / "sentinel").read_text() == "outside")


@pytest.mark.parametrize("name", BAD)
def test_a_bad_sweep_name_is_refused_by_sweep_and_run_tuner(prepared_dir, tmp_path, storage, name):
    outputs = tune_mod.SweepOutputs(best=tmp_path / "best.yaml", trials=tmp_path / "trials.csv")
    with pytest.raises(UnsafeNameError, match="not a valid name"):
        tune_mod.sweep(PARAMS, prepared_dir, outputs, f"sqlite:///{tmp_path}/mlflow.db", None,
                       Cluster(storage_path=str(storage)), name=name)
    spec = tuner.TunerSpec(tune=TuneConfig(), keys=(), param_space={}, storage=str(storage),
                           trials=TrialSpec({}, str(prepared_dir), Cluster(storage_path=str(storage)), name, 1, 1, False),
                           tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root=None,
                           open_parent=lambda: pytest.fail("parent opened"), describe="", command="ssgan tune")
    with pytest.raises(UnsafeNameError, match="not a valid name"):
        tuner.run_tuner(spec)
    assert _untouched(storage) and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("name", BAD)
def test_a_bad_curve_name_is_refused_before_anything_is_written(tmp_path, storage, name):
    work = tmp_path / "work" / "curve"
    work.mkdir(parents=True)
    (work / "sentinel").write_text("x")
    outputs = curve_mod.CurveOutputs(csv=tmp_path / "c.csv", png=tmp_path / "c.png")
    with pytest.raises(UnsafeNameError, match="not a valid name"):
        curve_mod.curve(PARAMS, outputs, work, f"sqlite:///{tmp_path}/mlflow.db", None,
                        Cluster(storage_path=str(storage)), name=name)
    assert _untouched(storage) and sorted(p.name for p in work.iterdir()) == ["sentinel"]


@pytest.mark.parametrize("command", ["tune", "curve"])
def test_the_cli_refuses_a_bad_name_in_one_line(tmp_path, command):
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "DVC_ROOT")}
    proc = subprocess.run([sys.executable, "-m", "ssgan", command, "--name", ".."], cwd=project, text=True,
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=300)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(f"ssgan {command}: error: {command} --name '..': not a valid name")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in project.iterdir()) == ["params.yaml"]


def test_prune_deletes_a_symlinked_run_not_what_it_points_to(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "sentinel").write_text("x")
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ssgan-done").symlink_to(tmp_path / "elsewhere")
    prune_runs(str(tmp_path / "ray"), finished="ssgan-done")
    assert (tmp_path / "elsewhere" / "sentinel").exists()


def test_prepare_into_a_shared_folder_keeps_what_it_does_not_own(tmp_path):
    data = tmp_path / "data"
    (data / "cache").mkdir(parents=True)
    (data / "cache" / "mnist.gz").write_bytes(b"downloaded")
    (data / "extra_labels.csv").write_text("row_id,label\n3,1\n")
    prepare(from_mapping(TINY_PARAMS).data, data)  # `ssgan prepare --out data`
    assert (data / "cache" / "mnist.gz").read_bytes() == b"downloaded"
    assert (data / "extra_labels.csv").read_text() == "row_id,label\n3,1\n"
    assert {"labeled.parquet", "unlabeled.parquet", "val.parquet", "test.parquet", "summary.json",
            "preview.png"} <= {p.name for p in data.iterdir()}
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no staging dir left


@pytest.fixture
def other_device(tmp_path):
    """A folder on another filesystem than tmp_path where there is one (/dev/shm), else beside it."""
    import shutil
    import tempfile

    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != tmp_path.stat().st_dev:
        folder = Path(tempfile.mkdtemp(dir=shm, prefix="ssgan-test-"))
        yield folder
        shutil.rmtree(folder)
    else:
        (tmp_path / "real").mkdir()
        yield tmp_path / "real"


def test_staging_into_a_symlinked_folder_writes_at_its_target(tmp_path, other_device):
    real = other_device
    (real / "mine.txt").write_text("user's")
    (tmp_path / "link").symlink_to(real)
    with staging(tmp_path / "link") as tmp:
        (tmp / "labeled.parquet").write_text("new")
    assert (tmp_path / "link").is_symlink() and (real / "labeled.parquet").read_text() == "new"
    assert (real / "mine.txt").read_text() == "user's"
