"""A Ray Train worker killed mid-run: with train.max_failures >= 1 Ray restarts the group from the last
checkpoint, the run finishes, and MLflow holds every epoch exactly once (no repeat, no gap)."""
import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import mlflow
import ray
from ray.util.state import list_actors

from ssgan.driver import launch
from ssgan.config import Cluster

EPOCHS = 4


def _kill_a_worker_after_first_checkpoint(storage: Path, killed: dict) -> None:
    # Poll the checkpoints on disk, not MLflow: a second client would race the driver creating its store.
    address = ray.get_runtime_context().gcs_address  # this test's private Ray, not whatever else runs here
    deadline = time.time() + 300
    while time.time() < deadline:
        checkpoints = [d for d in storage.glob("ssgan-*/checkpoint_*") if (d / "state.pt").exists()]
        if checkpoints:
            workers = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
            if workers:
                killed["pid"] = workers[-1].pid
                os.kill(workers[-1].pid, signal.SIGKILL)
                return
        time.sleep(0.05)


def test_killed_worker_restarts_from_checkpoint(ray_local, prepared_dir, tiny_config, tmp_path):
    train = dataclasses.replace(tiny_config.train, epochs=EPOCHS, steps_per_epoch=150, max_failures=1)
    cfg = dataclasses.replace(tiny_config, train=train)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outputs = launch.TrainOutputs(model=tmp_path / "model.pt", history=tmp_path / "train.csv",
                                  samples=tmp_path / "samples.png", curves=tmp_path / "curves.png")
    def workers_ever() -> int:
        return len(list_actors(address=ray.get_runtime_context().gcs_address, limit=10_000,
                               filters=[("class_name", "=", "RayTrainWorker")]))

    started = workers_ever()
    killed: dict = {}
    killer = threading.Thread(target=_kill_a_worker_after_first_checkpoint, args=(tmp_path / "ray", killed), daemon=True)
    killer.start()
    result = launch.train(cfg, prepared_dir, outputs, uri, tmp_path / "mlruns", Cluster(storage_path=str(tmp_path / "ray")))
    killer.join(timeout=5)

    assert killed.get("pid"), "no worker was killed"
    assert workers_ever() - started == 4  # two workers, then two more: Ray restarted the group after the kill
    client = mlflow.MlflowClient(uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    for name in ("val_error", "loss_sup", "loss_gen"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == list(range(1, EPOCHS + 1))
    assert outputs.model.exists()
