"""`ssgan tune`: trials as nested MLflow runs written on the driver, ASHA stops, outputs, resume, bad input."""
import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from ssgan.tracking import runs as tracking
from ssgan.sweep.space import tune_from_mapping
from ssgan.sweep.trial_log import STOPPED_TAG, TRIAL_TAG, TrialLog
from tests.conftest import TINY_PARAMS

ROOT = Path(__file__).resolve().parents[1]


def _params(epochs=3, steps=30, **tune):
    return {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "epochs": epochs, "steps_per_epoch": steps, "num_workers": 1},
            "tune": {"num_samples": 1, "max_concurrent_trials": 1, "grace_period": 1, "reduction_factor": 2, "epochs": epochs,
                     **tune}}


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "DVC_ROOT")}
    return {**env, "PYTHONPATH": str(ROOT)}


def _project(tmp_path, prepared_dir, params) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    (project / "data").mkdir()
    (project / "data" / "prepared").symlink_to(prepared_dir)
    return project


def _tune(project, *args, **popen):
    return subprocess.Popen([sys.executable, "-m", "ssgan", "tune", *args], cwd=project, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, **popen)


def _children(project):
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if r.data.tags.get("ssgan.mode") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def _steps(client, run, metric="val_error"):
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, metric))


def test_trial_log_keeps_each_epoch_once_across_a_restart(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = tracking.start_run(uri, "ssgan-digits", {}, tmp_path / "mlruns")
    params = functools.partial(lambda o: {"train.lr": o["train.lr"]})
    log = TrialLog(parent, "s", max_epochs=3, scheduler="asha", artifact_root=tmp_path / "mlruns", trial_params=params)
    o = {"train.lr": 0.01}
    for epoch in (1, 2):
        log.result("t_00000", o, {"epoch": epoch, "step": 10 * epoch, "val_error": 0.5 / epoch, "loss_sup": 1.0})
    # The driver restarts: a new log finds the child by its tag; a trial restarted from its epoch-1
    # checkpoint reports epoch 2 again, then 3.
    log = TrialLog(parent, "s", max_epochs=3, scheduler="asha", artifact_root=tmp_path / "mlruns", trial_params=params)
    for epoch in (2, 3):
        log.result("t_00000", o, {"epoch": epoch, "step": 10 * epoch, "val_error": 0.9, "loss_sup": 1.0})
    assert log.complete("t_00000", o, {"val_error": 0.2}) == "FINISHED"
    log.result("t_00001", {"train.lr": 1e-9}, {"epoch": 1, "step": 10, "val_error": 0.9})
    assert log.complete("t_00001", {"train.lr": 1e-9}, {"val_error": 0.9}) == "KILLED"
    log.result("t_00002", {"train.lr": 1.0}, {"epoch": 1, "step": 10, "val_error": 0.9})
    log.error("t_00002", {"train.lr": 1.0}, "Traceback ...\nValueError: nan loss")

    client = mlflow.MlflowClient(uri)
    runs = {r.data.tags[TRIAL_TAG]: r for r in client.search_runs([client.get_experiment_by_name("ssgan-digits").experiment_id],
                                                                    filter_string=f"tags.`mlflow.parentRunId` = '{parent.run_id}'")}
    assert sorted(runs) == ["s/t_00000", "s/t_00001", "s/t_00002"]
    done, stopped, failed = runs["s/t_00000"], runs["s/t_00001"], runs["s/t_00002"]
    assert [(m.step, m.value) for m in sorted(client.get_metric_history(done.info.run_id, "val_error"), key=lambda m: m.step)] \
        == [(1, 0.5), (2, 0.25), (3, 0.9)]  # epoch 2 from before the restart, not its repeat
    assert (done.info.status, stopped.info.status, failed.info.status) == ("FINISHED", "KILLED", "FAILED")
    assert stopped.data.tags[STOPPED_TAG] == "asha at epoch 1" and STOPPED_TAG not in done.data.tags
    assert done.data.params == {"train.lr": "0.01"}
    out = capsys.readouterr().out
    assert "[ssgan] trial t_00001 stopped by asha at epoch 1: train.lr=1e-09 val_error=0.9000 epochs 1/3" in out
    assert "[ssgan] trial t_00002 failed: ValueError: nan loss: train.lr=1.0" in out


@pytest.mark.slow
def test_sweep_nests_trials_stops_a_poor_one_and_writes_the_outputs(prepared_dir, tmp_path):
    # Sequential trials: the second (an lr that cannot learn) meets the first's epoch-1 score at ASHA's rung 1.
    params = _params(space={"train.lr": {"grid": [0.03, 1e-9]}})
    project = _project(tmp_path, prepared_dir, params)
    proc = _tune(project)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    # Under load, the Ray actors of the trial ASHA stops can log a traceback while Tune tears them down:
    # its Train controller from the backend shutdown (ray/train/torch/config.py on_shutdown), its
    # worker from a report to the controller that is already gone. Those are Ray's, in its actors'
    # log lines; the driver itself must print none.
    ray_actors = ("(TrainController", "(RayTrainWorker")
    assert not [line for line in out.splitlines() if "Traceback" in line and not any(a in line for a in ray_actors)], out
    rows = (project / "tune" / "trials.csv").read_text().splitlines()
    assert rows[0] == "trial_id,train.lr,best_val_error,last_val_error,epochs,status,wall_s,mlflow_run_id"
    assert [r.split(",")[1] for r in rows[1:]] == ["0.03", "1e-09"]
    assert [r.split(",")[4:6] for r in rows[1:]] == [["3", "finished"], ["1", "stopped (asha at epoch 1)"]]

    client, (parent,), children = _children(project)
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id} and len(children) == 2
    by_lr = {c.data.params["train.lr"]: c for c in children}
    assert (by_lr["0.03"].info.status, by_lr["1e-09"].info.status) == ("FINISHED", "KILLED")
    assert by_lr["1e-09"].data.tags[STOPPED_TAG] == "asha at epoch 1"
    assert _steps(client, by_lr["0.03"]) == [1, 2, 3] and _steps(client, by_lr["1e-09"]) == [1]
    assert by_lr["0.03"].data.params["train.epochs"] == "3" and by_lr["0.03"].data.params["train.num_workers"] == "1"
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["ssgan.best_run_id"] == by_lr["0.03"].info.run_id
    assert parent.data.params["best.train.lr"] == "0.03" and parent.data.params["tune.space.train.lr"] == "grid [0.03, 1e-09]"
    best_error = min(m.value for m in client.get_metric_history(by_lr["0.03"].info.run_id, "val_error"))
    assert parent.data.metrics["val_error"] == pytest.approx(best_error)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"best.yaml", "trials.csv", "sweep.png"}

    best = yaml.safe_load((project / "tune" / "best.yaml").read_text())
    assert best["train"]["lr"] == 0.03 and best["tune"] == params["tune"]
    from pipelines.params import load_config  # what `ssgan train --params tune/best.yaml` reads

    assert load_config(project / "tune" / "best.yaml", ("data", "model", "train")).train.lr == 0.03
    assert not [p.name for p in (project / ".ray_results").iterdir()]  # trial checkpoints cleaned up


@pytest.mark.slow
def test_killed_sweep_resumes_without_rerunning_or_duplicating(prepared_dir, tmp_path):
    params = _params(epochs=3, steps=60, scheduler="fifo", space={"train.lr": {"grid": [0.01, 0.02, 0.03]}})
    project = _project(tmp_path, prepared_dir, params)
    first = _tune(project)
    deadline = time.time() + 300
    # Kill the driver once the first trial has finished and the second has a checkpoint (seen on disk).
    while time.time() < deadline and first.poll() is None:
        if list((project / ".ray_results").glob("sweep-*-*_00001/checkpoint_*/state.pt")):
            break
        time.sleep(0.1)
    assert first.poll() is None, "the driver must die mid-sweep"
    time.sleep(1.5)  # Tune saves its experiment state every second (ssgan.sweep.tuner.TUNE_ENV)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    # The parent run gone (another store): one error line, and the interrupted sweep is left for a resume.
    (project / "mlflow.db").rename(project / "elsewhere.db")
    missing = _tune(project, "--resume")
    out = missing.communicate(timeout=120)[0]
    assert missing.returncode == 1 and "has no MLflow parent run" in out.strip().splitlines()[-1], out
    assert list((project / ".ray_results").glob("sweep-*-*_00001/checkpoint_*/state.pt"))
    (project / "elsewhere.db").rename(project / "mlflow.db")

    second = _tune(project, "--resume")
    out = second.communicate(timeout=600)[0]
    assert second.returncode == 0, out
    assert "trial" in out and "_00000 finished" not in out  # the finished trial was not run again
    client, (parent,), children = _children(project)
    assert parent.info.status == "FINISHED" and len(children) == 3
    for child in children:
        assert child.info.status == "FINISHED"
        assert _steps(client, child) == [1, 2, 3] and _steps(client, child, "loss_sup") == [1, 2, 3]
    rows = (project / "tune" / "trials.csv").read_text().splitlines()[1:]
    assert sorted(r.split(",")[1] for r in rows) == ["0.01", "0.02", "0.03"]


@pytest.mark.parametrize("args, tune, message", [
    ((), {}, "ssgan tune: error: tune.space: empty; add a searched key"),
    (("--resume",), {"space": {"train.lr": {"grid": [0.01]}}}, "ssgan tune: error: --resume: no interrupted run 'sweep-"),
    ((), {"space": {"train.ema_decay": {"uniform": [0.5, 1.5]}}}, "ssgan tune: error: tune.space.train.ema_decay: uniform value 1.5"),
])
def test_bad_sweep_is_one_line_and_nothing_written(prepared_dir, tmp_path, args, tune, message):
    project = _project(tmp_path, prepared_dir, {**_params(), "tune": tune})
    proc = _tune(project, *args)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1 and out.strip().splitlines()[-1].startswith(message), out
    assert not (project / "tune").exists() and not (project / "mlflow.db").exists()


def test_tune_section_of_the_committed_params_is_valid():
    from ssgan.sweep.space import check_space, sample_trials, check_trials

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    tc = tune_from_mapping(params)
    check_space(params, tc.space)
    check_trials(params, sample_trials(tc.space, tc.num_samples, tc.seed))
