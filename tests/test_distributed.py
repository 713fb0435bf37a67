import os

import pytest

from ssgan.distributed import Cluster, ClusterError, check_resources, epoch_callback, fit
from ssgan.resume import prune_runs
from ssgan.train import TrainJob


def test_two_worker_ray_train_run(ray_local, prepared_dir, tiny_config, tmp_path):
    state = fit(TrainJob(tiny_config, str(prepared_dir)), Cluster(storage_path=str(tmp_path)), name="ssgan-two-workers")
    assert not (tmp_path / "ssgan-two-workers").exists()  # finished: its state is the caller's now
    assert state["epoch"] == tiny_config.train.epochs
    assert state["step"] == tiny_config.train.epochs * tiny_config.train.steps_per_epoch
    history = state["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert {"loss_sup", "loss_unl", "loss_gen", "val_accuracy", "val_error"} <= set(history[0])
    best = max(history, key=lambda h: h["val_accuracy"])
    assert state["best"]["val_accuracy"] == best["val_accuracy"]
    assert set(state["best"]) >= {"config", "data", "discriminator", "generator", "epoch"}


def test_prune_removes_the_finished_run_and_all_but_the_newest_unfinished(tmp_path):
    for age, name in enumerate(["ssgan-old", "ssgan-mid", "ssgan-new", "ssgan-done", "not-ours"]):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, ns=(age * 10**9, age * 10**9))
    prune_runs(str(tmp_path), finished="ssgan-done", keep_unfinished=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-ours", "ssgan-mid", "ssgan-new"]


def test_more_workers_than_cpus_fails_fast(ray_local):
    import ray

    have = int(ray.cluster_resources()["CPU"])
    with pytest.raises(ClusterError, match=rf"train.num_workers={have + 1} needs {have + 1} CPU\(s\); the Ray cluster has {have}\."):
        check_resources(have + 1, use_gpu=False)
    with pytest.raises(ClusterError, match="train.use_gpu=true needs 1 GPU"):
        check_resources(1, use_gpu=True)


def test_epoch_callback_passes_each_epoch_once_across_a_restart():
    logged = []
    callback = epoch_callback(lambda metrics: logged.append(metrics["epoch"]))
    checkpoint = object()
    callback.after_report(None, [{"epoch": 1}, {}], None)
    callback.after_report(None, [{"epoch": 2}, {}], checkpoint)  # checkpoint_every 2: epochs 1-2 are safe now
    callback.after_report(None, [{"epoch": 3}, {}], None)
    callback.after_exception(None, {1: RuntimeError("worker died")})  # Ray restarts from epoch 2's checkpoint
    callback.after_report(None, [{"epoch": 3}, {}], None)
    callback.after_report(None, [{"epoch": 4}, {}], checkpoint)
    assert logged == [1, 2, 3, 4]
