"""The three stages through the command line, in a temporary project folder, as `dvc repro` runs them."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from pipelines.cli import main
from tests.conftest import TINY_PARAMS
from tests.test_tracking import logged_models

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    return tmp_path


def test_prepare_train_evaluate(ray_local, project):
    for stage in ("prepare", "train", "evaluate"):
        main([stage])
    metrics = json.loads((project / "metrics.json").read_text())
    per_class = {f"test_accuracy_class_{i}" for i in range(10)}
    assert set(metrics) == {"test_accuracy", "test_error", "val_accuracy", "best_epoch"} | per_class
    # 100 stratified test examples: 10 per class, so the overall accuracy is the mean over classes.
    assert metrics["test_accuracy"] == pytest.approx(sum(metrics[k] for k in per_class) / 10)
    assert (project / "plots/confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert metrics["test_accuracy"] + metrics["test_error"] == pytest.approx(1.0)
    rows = list(csv.DictReader((project / "plots/train.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert (project / "plots/samples.png").read_bytes()[:4] == b"\x89PNG"
    assert len((project / "plots/confusion.csv").read_text().splitlines()) == 1 + 100

    uri = f"sqlite:///{project / 'mlflow.db'}"
    run_id = json.loads((project / "models/mlflow_run.json").read_text())["run_id"]
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.data.params["train.epochs"] == "2"
    assert run.data.metrics["test_accuracy"] == metrics["test_accuracy"]
    assert run.data.metrics["test_accuracy_class_3"] == metrics["test_accuracy_class_3"]
    assert run.data.metrics["val_accuracy"] == float(rows[-1]["val_accuracy"])
    assert set(logged_models(uri, run_id)) == {"classifier", "generator"}
    assert mlflow.get_experiment(run.info.experiment_id).name == "ssgan-digits"


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ssgan", *args], cwd=cwd, capture_output=True, text=True)


def test_unknown_params_key_is_one_line_error(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["learning_rate"] = 0.1
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = _cli("train", cwd=project)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ssgan train: error: train.learning_rate: unknown key; allowed keys: {', '.join(_train_keys())}"]


def _train_keys():
    import dataclasses

    from ssgan.config import TrainConfig
    return [f.name for f in dataclasses.fields(TrainConfig)]


def test_missing_prepared_split_names_file_and_fix(project):
    result = _cli("train", cwd=project)
    assert result.returncode == 1
    assert result.stderr.strip() == ("ssgan train: error: data/prepared/labeled.parquet: not found; "
                                     "run `dvc repro prepare` to create the prepared splits")
    assert not (project / "models").exists() and not (project / "mlflow.db").exists()


def test_missing_model_is_clear_error(project):
    result = _cli("evaluate", cwd=project)
    assert result.returncode == 1
    assert "models/model.pt: model file not found; run `dvc repro train` first" in result.stderr
    assert not (project / "metrics.json").exists()


def test_help_lists_subcommands():
    result = subprocess.run([sys.executable, "-m", "ssgan", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0
    for stage in ("prepare", "train", "evaluate"):
        assert stage in result.stdout


def test_more_workers_than_cpus_is_one_line_error(ray_local, project, prepared_dir, capsys):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["num_workers"] = 3
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(prepared_dir)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == ("ssgan train: error: train.num_workers=3 needs 3 CPU(s); the Ray cluster has 2. "
                   "Lower train.num_workers or add nodes (RAY_ADDRESS)")
    assert not (project / "models").exists() and not (project / "mlflow.db").exists()
