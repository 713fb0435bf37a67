"""`dvc repro` in a scratch copy of the project: a failing stage must leave the last good outputs as they were.

DVC deletes a stage's outputs before running it unless they are `persist: true`; every stage then
replaces its own outputs only on success. This runs the real pipeline (Ray included), then three
careless mistakes, each of which must fail with one line and touch nothing.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY_PARAMS

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # every test here shares one real `dvc repro`, Ray included
# promote is always run (it records the run in a store that lacks it); nothing else may be out of date.
ALWAYS_RUN = {"promote": ["always changed"]}
OUTPUTS = ("data/prepared", "models/model.pt", "models/reference.pt", "plots", "metrics.json", "promotion.json",
           "dvc.lock")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "DVC_ROOT")}
    # dvc.yaml says `python -m ...`: it must be this interpreter, whose venv has the dependencies.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, env=_env(), capture_output=True,
                          text=True, timeout=600)


def _snapshot(project: Path) -> dict[str, bytes]:
    files = {}
    for out in OUTPUTS:
        path = project / out
        for f in sorted(path.rglob("*") if path.is_dir() else [path]):
            if f.is_file():
                files[str(f.relative_to(project))] = f.read_bytes()
    return files


@pytest.fixture(scope="module")
def repro_project(tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    for name in ("ssgan", "pipelines"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", project)
    (project / "data").mkdir()
    shutil.copy(ROOT / "data" / "extra_labels.csv", project / "data")  # a dependency of prepare (empty)
    # dvc.yaml lists single quality.* keys (so an evaluate-only one does not retrain): they must be present.
    quality = yaml.safe_load((ROOT / "params.yaml").read_text())["quality"]
    # One Ray worker: this file is about DVC and the stages' outputs; two workers (about 6 s more here)
    # are test_distributed's and test_multinode's.
    train = {**TINY_PARAMS["train"], "num_workers": 1}
    (project / "params.yaml").write_text(yaml.safe_dump({**TINY_PARAMS, "train": train, "quality": quality}))
    assert _dvc(project, "init", "--no-scm", "-q").returncode == 0
    first = _dvc(project, "repro")
    assert first.returncode == 0, first.stdout + first.stderr
    return project, first


def test_repro_prints_no_traceback(repro_project):
    _, first = repro_project
    assert "Traceback" not in first.stdout + first.stderr
    assert "[ssgan] test_accuracy" in first.stdout


def test_run_datasets_carry_the_md5s_dvc_recorded(repro_project):
    """The MLflow run's four datasets have, as digest, the md5 DVC lists for each file of data/prepared."""

    import mlflow

    project, _ = repro_project
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    (prepared,) = [o for o in lock["stages"]["prepare"]["outs"] if o["path"] == "data/prepared"]
    manifest_md5 = prepared["md5"]  # "<md5>.dir": a JSON list of the directory's files in DVC's cache
    manifest = project / ".dvc" / "cache" / "files" / "md5" / manifest_md5[:2] / manifest_md5[2:]
    dvc_md5 = {e["relpath"]: e["md5"] for e in json.loads(manifest.read_text())}
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    (run,) = [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
              if "ssgan.model_md5" in r.data.tags]
    digests = {i.dataset.name: i.dataset.digest for i in run.inputs.dataset_inputs}
    assert digests == {name: dvc_md5[f"{name}.parquet"] for name in ("labeled", "unlabeled", "val", "test")}
    assert json.loads((project / "promotion.json").read_text())["promoted"]


@pytest.mark.parametrize("section, key, value, message", [
    ("train", "learning_rate", 0.1, "ssgan train: error: train.learning_rate: unknown key"),
    ("train", "num_workers", 64, "ssgan train: error: train.num_workers=64 needs 64 CPU(s); this machine has"),
    ("data", "n_labeled_per_class", 0, "ssgan prepare: error: data.n_labeled_per_class: got 0"),
])
def test_failed_stage_keeps_the_previous_outputs(repro_project, section, key, value, message):
    project, _ = repro_project
    before = _snapshot(project)
    assert {"data/prepared/labeled.parquet", "models/model.pt", "plots/curves.png", "metrics.json"} <= set(before)
    good = (project / "params.yaml").read_text()
    params = yaml.safe_load(good)
    params[section][key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        result = _dvc(project, "repro")
    finally:
        (project / "params.yaml").write_text(good)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    after = _snapshot(project)
    assert after.keys() == before.keys()
    assert [name for name in before if after[name] != before[name]] == []
    status = _dvc(project, "status", "--json")  # the restored params match the untouched outputs and dvc.lock
    assert json.loads(status.stdout) == ALWAYS_RUN, status.stdout


def test_a_new_store_gets_the_run_the_champion_and_predicts(repro_project):
    """A fresh clone's new store (here: the store moved away): DVC skips train and evaluate, whose
    outputs match dvc.lock, and promote records their run, test metrics and versions, then the champion."""
    project, _ = repro_project
    (project / "mlflow.db").rename(project / "old-mlflow.db")
    shutil.move(project / "mlruns", project / "old-mlruns")
    before = _snapshot(project)
    repro = _dvc(project, "repro")
    assert repro.returncode == 0, repro.stdout + repro.stderr
    assert "Stage 'train' didn't change, skipping" in repro.stdout and "recorded MLflow run" in repro.stdout
    assert _snapshot(project).keys() == before.keys()
    assert {k for k in before if _snapshot(project)[k] != before[k]} <= {"promotion.json"}
    # Read in a new process: this one's MLflow caches its database engine by URI, and the URI is the one
    # the moved-away store had.
    query = ("import hashlib, json, mlflow, sys\n"
             "c = mlflow.MlflowClient(sys.argv[1])\n"
             "md5 = hashlib.md5(open('models/model.pt', 'rb').read()).hexdigest()\n"
             "runs = c.search_runs([e.experiment_id for e in c.search_experiments()], f\"tags.`ssgan.model_md5` = '{md5}'\")\n"
             "champion = c.get_model_version_by_alias('ssgan-digits-classifier', 'champion')\n"
             "print(json.dumps({'runs': [(r.info.run_id, r.info.status, r.data.metrics.get('test_error'),"
             " r.data.tags.get('ssgan.recorded_from')) for r in runs], 'champion': champion.run_id}))\n")
    out = subprocess.run([sys.executable, "-c", query, f"sqlite:///{project / 'mlflow.db'}"], cwd=project, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    store = json.loads(out.stdout.strip().splitlines()[-1])
    metrics = json.loads((project / "metrics.json").read_text())
    (run_id, status, test_error, recorded), = store["runs"]
    assert status == "FINISHED" and recorded == "dvc outputs" and store["champion"] == run_id
    assert test_error == pytest.approx(metrics["test_error"])
    again = _dvc(project, "repro")  # the store has the run now: nothing recorded twice
    assert again.returncode == 0 and "recorded MLflow run" not in again.stdout and "already the champion" in again.stdout
    predict = subprocess.run([sys.executable, "-m", "ssgan", "predict", "--model", "models:/ssgan-digits-classifier@champion",
                              "data/prepared/test.parquet"], cwd=project, env=_env(), capture_output=True, text=True,
                             timeout=300)
    assert predict.returncode == 0, predict.stderr
    assert len(predict.stdout.splitlines()) == TINY_PARAMS["data"]["test_size"]
