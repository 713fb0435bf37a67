import dataclasses

import pytest

from ssgan.distributed import Cluster, ClusterError, check_resources, fit
from ssgan.train import TrainJob


def test_two_worker_ray_train_run(ray_local, prepared_dir, tiny_config, tmp_path):
    state = fit(TrainJob(tiny_config, str(prepared_dir)), Cluster(storage_path=str(tmp_path)), name="two-workers")
    assert state["epoch"] == tiny_config.train.epochs
    assert state["step"] == tiny_config.train.epochs * tiny_config.train.steps_per_epoch
    history = state["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert {"loss_sup", "loss_unl", "loss_gen", "val_accuracy", "val_error"} <= set(history[0])
    best = max(history, key=lambda h: h["val_accuracy"])
    assert state["best"]["val_accuracy"] == best["val_accuracy"]
    assert set(state["best"]) >= {"config", "data", "discriminator", "generator", "epoch"}


def test_resume_continues_from_the_last_checkpoint(ray_local, prepared_dir, tiny_config, tmp_path):
    job = TrainJob(tiny_config, str(prepared_dir))
    fit(job, Cluster(storage_path=str(tmp_path)), name="resumable")
    longer = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, epochs=3))
    state = fit(TrainJob(longer, str(prepared_dir)), Cluster(storage_path=str(tmp_path)), name="resumable")
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3]  # epochs 1-2 restored, only 3 trained


def test_more_workers_than_cpus_fails_fast(ray_local):
    with pytest.raises(ClusterError, match=r"train.num_workers=3 needs 3 CPU\(s\); the Ray cluster has 2"):
        check_resources(3, use_gpu=False)
    with pytest.raises(ClusterError, match="train.use_gpu=true needs 1 GPU"):
        check_resources(1, use_gpu=True)
