"""The three stages through the command line, in a temporary project folder, as `dvc repro` runs them."""
import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from pipelines.cli import main
from ssgan.data.parquet import read_split
from tests.conftest import TINY_PARAMS
from tests.test_tracking import logged_models

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    return tmp_path


def test_prepare_train_evaluate(ray_local, project, capsys):
    for stage in ("prepare", "reference", "train", "evaluate", "promote"):
        main([stage])
    metrics = json.loads((project / "metrics.json").read_text())
    # The headline numbers: `dvc exp show` stays narrow; per-class accuracies have their own file.
    assert set(metrics) == {"test_accuracy", "test_error", "val_accuracy", "best_epoch", "fid_classifier_test",
                            "kid_classifier_test", "is_classifier", "reference_test_accuracy"}
    # The quality numbers are those of the saved G's seeded samples, recomputed here from the public pieces.
    import torch

    from ssgan.quality import measures as Q
    from ssgan.training.checkpoint import load_model
    from ssgan.quality.feature_nets import classifier_outputs, reference_from_payload
    from ssgan.training.models import generate_images

    saved = load_model(project / "models/model.pt")
    net = reference_from_payload(torch.load(project / "models/reference.pt", weights_only=True))
    fake, probs = classifier_outputs(net, generate_images(saved.generator, 1000, seed=saved.config.train.seed))
    real = classifier_outputs(net, read_split(project / "data/prepared/test.parquet").images)[0]
    assert metrics["is_classifier"] == pytest.approx(Q.inception_score(probs), rel=1e-6)
    assert metrics["fid_classifier_test"] == pytest.approx(Q.fid(fake, real), rel=1e-6)
    assert metrics["kid_classifier_test"] == pytest.approx(Q.kid(fake, real), rel=1e-6, abs=1e-9)
    assert metrics["reference_test_accuracy"] > 0.5  # far above chance: its features mean something
    per_class = list(csv.DictReader((project / "plots/test_accuracy_class.csv").open()))
    assert [r["class"] for r in per_class] == [str(i) for i in range(10)]
    # 100 stratified test examples: 10 per class, so the overall accuracy is the mean over classes.
    assert metrics["test_accuracy"] == pytest.approx(sum(float(r["test_accuracy_class"]) for r in per_class) / 10)
    assert metrics["test_accuracy"] + metrics["test_error"] == pytest.approx(1.0)
    for png in ("plots/confusion.png", "plots/samples.png", "plots/curves.png"):
        assert (project / png).read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((project / "plots/train.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # quality.every_epochs 5 > 2 epochs: G is scored at the last epoch only.
    assert rows[0]["fid_classifier_val"] == "" and float(rows[1]["fid_classifier_val"]) > 0
    confusion = list(csv.DictReader((project / "plots/confusion.csv").open()))
    assert len(confusion) == 100

    uri = f"sqlite:///{project / 'mlflow.db'}"
    md5 = hashlib.md5((project / "models/model.pt").read_bytes()).hexdigest()
    (run,) = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("ssgan-digits").experiment_id])
    assert run.data.tags["ssgan.model_md5"] == md5  # how evaluate found the run
    assert run.data.params["train.epochs"] == "2"
    assert run.data.metrics["test_accuracy"] == metrics["test_accuracy"]
    assert run.data.metrics["test_accuracy_class_3"] == float(per_class[3]["test_accuracy_class"])
    assert run.data.metrics["val_accuracy"] == float(rows[-1]["val_accuracy"])
    assert run.info.status == "FINISHED" and run.data.metrics["fid_classifier_val"] == float(rows[-1]["fid_classifier_val"])
    main(["evaluate"])  # a rerun must not log the test metrics a second time
    assert len(mlflow.MlflowClient(uri).get_metric_history(run.info.run_id, "test_error")) == 1
    artifacts = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(run.info.run_id)}
    assert {"curves.png", "samples.png", "train.csv", "confusion.png", "test_accuracy_class.csv"} <= artifacts
    models = logged_models(uri, run.info.run_id)
    assert set(models) == {"classifier", "generator"}

    # The logged classifier takes the test split's pixels as stored (uint8) and predicts what evaluate did:
    # a class name per image, with its probability the largest of the class probabilities.
    test = read_split(project / "data/prepared/test.parquet")
    served = mlflow.pyfunc.load_model(f"models:/{models['classifier'].model_id}").predict(test.images)
    assert list(served["class"]) == [r["predicted"] for r in confusion]
    np.testing.assert_allclose(served["probability"], [max(p) for p in served["probabilities"]])

    # Lineage: the four splits as datasets whose digest is each file's md5; the registered versions.
    client = mlflow.MlflowClient(uri)
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    digests = {i.dataset.name: (i.dataset.digest, {t.key: t.value for t in i.tags}["mlflow.data.context"]) for i in inputs}
    assert digests == {name: (hashlib.md5((project / f"data/prepared/{name}.parquet").read_bytes()).hexdigest(), context)
                       for name, context in (("labeled", "training"), ("unlabeled", "training"),
                                             ("val", "validation"), ("test", "test"))}
    from ssgan.data.identity import val_key
    assert run.data.tags["ssgan.data_key"] == val_key(project / "data/prepared")
    assert run.data.tags["ssgan.git_commit"] == "none (not a git checkout)"
    promotion = json.loads((project / "promotion.json").read_text())
    assert promotion["promoted"] and promotion["reason"] == "first version for this data"
    champion = client.get_model_version_by_alias("ssgan-digits-classifier", "champion")
    assert champion.run_id == run.info.run_id and "val error" in champion.description
    assert client.get_model_version_by_alias("ssgan-digits-generator", "champion").run_id == run.info.run_id

    # `ssgan predict` with the registered champion: the classes evaluate found, one line per image.
    capsys.readouterr()
    main(["predict", "--model", "models:/ssgan-digits-classifier@champion", "data/prepared/test.parquet",
          "--output", "preds.csv"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines] == [r["predicted"] for r in confusion]
    assert lines[0].startswith("data/prepared/test.parquet#0\t")
    assert [r["class"] for r in csv.DictReader((project / "preds.csv").open())] == [r["predicted"] for r in confusion]
    main(["sample", "--model", "models:/ssgan-digits-generator@champion", "--n", "9", "--out", "grid.png"])
    assert (project / "grid.png").read_bytes()[:4] == b"\x89PNG"

    # `ssgan fid`: a split against itself is 0; the model file and its logged generator give the same
    # samples (same latents), so the same distance; evaluate's number is the same computation.
    capsys.readouterr()
    main(["fid", "data/prepared/test.parquet", "data/prepared/test.parquet"])
    assert capsys.readouterr().out.startswith("fid_classifier: 0.0000  (100 vs 100 images)")
    main(["fid", "data/prepared/test.parquet", "models/model.pt"])
    from_file = capsys.readouterr().out
    main(["fid", "data/prepared/test.parquet", f"runs:/{run.info.run_id}/generator"])
    assert capsys.readouterr().out.splitlines()[-1] == from_file.strip()
    assert from_file.startswith(f"fid_classifier: {metrics['fid_classifier_test']:.4f}  (100 vs 1000 images)")


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


def test_more_workers_than_local_cpus_is_refused_before_ray_starts(project, prepared_dir, capsys, monkeypatch):
    def no_ray(*_):
        raise AssertionError("Ray was started although the answer was known without it")

    monkeypatch.setattr("ssgan.driver.launch.connect", no_ray)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["num_workers"] = os.cpu_count() + 1
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(prepared_dir)])
    assert exit_info.value.code == 1
    n = os.cpu_count() + 1
    assert capsys.readouterr().err.strip() == (
        f"ssgan train: error: train.num_workers={n} needs {n} CPU(s); this machine has {n - 1}. "
        "Lower train.num_workers or add nodes (RAY_ADDRESS)")
    assert not (project / "models").exists() and not (project / "mlflow.db").exists()


@pytest.mark.parametrize("stage", ["prepare", "reference", "train", "evaluate", "tune"])
def test_stage_modules_honour_their_arguments(project, stage):
    # `python -m pipelines.<stage>` is what dvc.yaml runs; its flags must reach the stage.
    result = subprocess.run([sys.executable, "-m", f"pipelines.{stage}", "--params", "mine.yaml"], cwd=project,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1
    assert result.stderr.strip() == (f"ssgan {stage}: error: mine.yaml: params file not found; "
                                     "run from the project root or pass --params PATH")
