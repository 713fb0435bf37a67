"""Resuming an interrupted training: runs keyed by params + data, restored state, refusal, restart, and a
real driver killed with SIGKILL whose rerun continues the same MLflow run."""
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from ssgan.driver import launch
from ssgan.config import Cluster
from ssgan.training.models import build_models
from ssgan.driver.resume import CheckpointMismatchError, run_key
from ssgan.training.loop import LocalSession, TrainJob, build_ema, build_optimizers, restore, run_training
from tests.conftest import TINY_PARAMS

ROOT = Path(__file__).resolve().parents[1]


def _with(cfg, **train):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))


def test_run_key_follows_what_decides_the_result(tiny_config, prepared_dir, tmp_path):
    key = run_key(tiny_config, prepared_dir)
    assert len(key) == 16 and key == run_key(tiny_config, prepared_dir)
    assert run_key(_with(tiny_config, lr=0.001), prepared_dir) != key
    assert run_key(_with(tiny_config, max_failures=3, checkpoint_every=5, sample_rows=4), prepared_dir) == key
    other = tmp_path / "prepared"
    other.mkdir()
    for f in prepared_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    assert run_key(tiny_config, other) == key  # same bytes, same key
    (other / "val.parquet").write_bytes((prepared_dir / "val.parquet").read_bytes() + b"\0")
    assert run_key(tiny_config, other) != key


def test_restore_loads_the_saved_weights_and_optimizer_state(tiny_config, prepared_dir):
    session = LocalSession()
    run_training(TrainJob(tiny_config, str(prepared_dir)), session)
    saved = session.state
    torch.manual_seed(123)  # different initial weights from the trained ones
    d, g = build_models(tiny_config.model, (1, 8, 8), 10)
    opt_d, opt_g = build_optimizers(tiny_config.train, d, g)
    ema = build_ema(tiny_config.train, d)
    restore(saved, d, g, opt_d, opt_g, ema)
    for module, key in ((d, "discriminator"), (g, "generator")):
        for name, tensor in module.state_dict().items():
            torch.testing.assert_close(tensor, saved[key][name], rtol=0, atol=0)
    for opt, key in ((opt_d, "opt_d"), (opt_g, "opt_g")):
        restored = opt.state_dict()
        assert restored["param_groups"] == saved[key]["param_groups"]
        for index, moments in saved[key]["state"].items():
            for name in ("step", "exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(restored["state"][index][name], moments[name], rtol=0, atol=0)
    for name, tensor in ema.state_dict().items():
        torch.testing.assert_close(tensor, saved["ema"][name], rtol=0, atol=0)


def _outputs(tmp_path):
    return launch.TrainOutputs(model=tmp_path / "model.pt", history=tmp_path / "train.csv",
                               samples=tmp_path / "samples.png", curves=tmp_path / "curves.png")


def _fake_checkpoint(storage: Path, key_dir: str, stored_key: str) -> Path:
    checkpoint = storage / key_dir / "checkpoint_2026-11-28_10-00-00.000000"
    checkpoint.mkdir(parents=True)
    torch.save({"run_key": stored_key, "epoch": 1, "history": []}, checkpoint / "state.pt")
    return checkpoint


def test_checkpoint_of_another_configuration_is_refused_before_ray(tiny_config, prepared_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "connect", lambda *_: pytest.fail("Ray started"))
    key = run_key(tiny_config, prepared_dir)
    _fake_checkpoint(tmp_path / "ray", f"ssgan-{key}", "0123456789abcdef")
    with pytest.raises(CheckpointMismatchError) as err:
        launch.train(tiny_config, prepared_dir, _outputs(tmp_path), f"sqlite:///{tmp_path}/mlflow.db", None,
                     Cluster(storage_path=str(tmp_path / "ray")))
    assert "run key 0123456789abcdef" in str(err.value) and f"run key is {key}" in str(err.value)
    assert "--restart" in str(err.value)


def test_restart_discards_the_interrupted_run(tiny_config, prepared_dir, tmp_path, monkeypatch):
    class Stop(Exception):
        pass

    def stop(*_):
        raise Stop

    monkeypatch.setattr(launch, "connect", stop)
    key = run_key(tiny_config, prepared_dir)
    _fake_checkpoint(tmp_path / "ray", f"ssgan-{key}", "0123456789abcdef")
    with pytest.raises(Stop):  # no refusal: the mismatched checkpoint is gone before it is read
        launch.train(tiny_config, prepared_dir, _outputs(tmp_path), f"sqlite:///{tmp_path}/mlflow.db", None,
                     Cluster(storage_path=str(tmp_path / "ray")), restart=True)
    assert not (tmp_path / "ray" / f"ssgan-{key}").exists()


def test_unwritable_storage_is_one_line_error_before_ray(tiny_config, prepared_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "connect", lambda *_: pytest.fail("Ray started"))
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(Exception, match="Ray Train storage is not writable .*set SSGAN_RAY_STORAGE"):
        launch.train(tiny_config, prepared_dir, _outputs(tmp_path), f"sqlite:///{tmp_path}/mlflow.db", None,
                     Cluster(storage_path=str(tmp_path / "file" / "ray")))


EPOCHS = 4


def _train_cli(project, prepared_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "DVC_ROOT")}
    return subprocess.Popen([sys.executable, "-m", "ssgan", "train", "--data", str(prepared_dir)], cwd=project,
                            env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


@pytest.mark.slow
def test_killed_driver_rerun_continues_the_same_run(prepared_dir, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    params = {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "epochs": EPOCHS, "steps_per_epoch": 200}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    uri = f"sqlite:///{project / 'mlflow.db'}"

    first = _train_cli(project, prepared_dir)
    # Wait for the first checkpoint on disk (polling MLflow would race the driver creating its store).
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:
        if any((d / "state.pt").exists() for d in (project / ".ray_results").glob("ssgan-*/checkpoint_*")):
            break
        time.sleep(0.1)
    assert first.poll() is None, "the driver must die mid-run"
    os.kill(first.pid, signal.SIGKILL)  # the driver only, as `kill -9` of `python -m pipelines.train`
    first.wait()
    ray_dirs = [p.name for p in (project / ".ray_results").iterdir() if p.is_dir()]
    assert len(ray_dirs) == 1 and ray_dirs[0].startswith("ssgan-")
    assert (project / ".ray_results" / f"{ray_dirs[0]}.lease").exists()  # its holder is dead: taken over below

    second = _train_cli(project, prepared_dir)
    out = second.communicate(timeout=600)[0]
    assert second.returncode == 0, out
    assert f"[ssgan] resuming run {ray_dirs[0][len('ssgan-'):]}" in out

    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])  # the same run, continued
    assert run.info.status == "FINISHED"
    for name in ("val_error", "loss_sup"):
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, name)) == list(range(1, EPOCHS + 1))
    assert not (project / ".ray_results" / ray_dirs[0]).exists()  # finished: its directory is pruned
    assert not (project / ".ray_results" / f"{ray_dirs[0]}.lease").exists()  # and its lease released


def test_a_resumed_run_logs_each_epoch_once_after_ctrl_c(tiny_config, tmp_path):
    """Ctrl-C after epoch 3's metrics reached MLflow but before its checkpoint was persisted: the rerun
    resumes from epoch 2's checkpoint, trains epoch 3 again and must not log it a second time."""
    import mlflow

    from ssgan.tracking import runs as tracking
    from ssgan.driver.launch import open_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first, _ = open_run(tiny_config, "key1", None, uri, tmp_path / "mlruns", "digits")
    for epoch in (1, 2, 3):
        tracking.log_epoch(first, {"epoch": epoch, "step": epoch, "val_error": 0.5 / epoch})
    tracking.end_run(first, "KILLED")
    state = {"epoch": 2, "history": [{"epoch": e, "step": e, "val_error": 0.5 / e} for e in (1, 2)]}
    run, logged = open_run(tiny_config, "key1", state, uri, tmp_path / "mlruns", "digits")
    assert run.run_id == first.run_id and logged == {1, 2, 3}
    for epoch in (3, 4):  # what the epoch callback hands over after the resume
        tracking.log_epoch(run, {"epoch": epoch, "step": epoch, "val_error": 0.5 / epoch}, skip=logged)
    steps = [m.step for m in mlflow.MlflowClient(uri).get_metric_history(run.run_id, "val_error")]
    assert sorted(steps) == [1, 2, 3, 4]
