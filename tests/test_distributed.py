import os
import time

import pytest

from ssgan.driver.cluster import Cluster, ClusterError, check_resources
from ssgan.driver.fit import epoch_callback, finish_run, fit
from ssgan.driver.resume import prune_runs
from ssgan.training.loop import TrainJob


def test_two_worker_ray_train_run(ray_local, prepared_dir, tiny_config, tmp_path):
    cluster = Cluster(storage_path=str(tmp_path))
    state = fit(TrainJob(tiny_config, str(prepared_dir)), cluster, name="ssgan-two-workers")
    # Kept until the caller has written its outputs: a crash in between resumes from the final checkpoint.
    assert list((tmp_path / "ssgan-two-workers").glob("checkpoint_*/state.pt"))
    finish_run(cluster, "ssgan-two-workers")
    assert not (tmp_path / "ssgan-two-workers").exists()
    assert state["epoch"] == tiny_config.train.epochs
    assert state["step"] == tiny_config.train.epochs * tiny_config.train.steps_per_epoch
    history = state["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert {"loss_sup", "loss_unl", "loss_gen", "val_accuracy", "val_error"} <= set(history[0])
    best = max(history, key=lambda h: h["val_accuracy"])
    assert state["best"]["val_accuracy"] == best["val_accuracy"]
    assert set(state["best"]) >= {"config", "data", "discriminator", "generator", "epoch"}


def test_prune_removes_only_the_finished_run_and_runs_abandoned_long_ago(tmp_path):
    """The storage may be shared: runs in progress elsewhere (fresh lease) and leaseless dirs are kept."""
    from ssgan.driver.lease import Holder, write_lease
    from ssgan.driver.resume import ABANDONED_AFTER_S

    now = time.time()

    def run_dir(name, renewed):  # held by a driver on another host, last renewed at `renewed`
        (tmp_path / name).mkdir()
        write_lease(str(tmp_path), name, Holder("elsewhere", 1, renewed, renewed, name))

    (tmp_path / "ssgan-done").mkdir()
    run_dir("ssgan-running-elsewhere", now - 60)  # another user's run, just renewed
    run_dir("ssgan-abandoned", now - ABANDONED_AFTER_S - 1)
    run_dir("ssgan-interrupted", now - ABANDONED_AFTER_S + 3600)  # resumable for another hour
    (tmp_path / "ssgan-no-lease").mkdir()
    (tmp_path / "not-ours").mkdir()
    for name in ("ssgan-running-elsewhere", "ssgan-no-lease"):  # mtimes must not matter (object stores have none)
        os.utime(tmp_path / name, ns=(0, 0))
    prune_runs(str(tmp_path), finished="ssgan-done", now=now)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "not-ours", "ssgan-interrupted", "ssgan-no-lease", "ssgan-running-elsewhere"]
    assert not (tmp_path / "ssgan-abandoned.lease").exists()  # taken over, then released with its directory


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


def test_scoped_environ_sets_for_the_block_and_puts_back_what_was_there(monkeypatch):
    import os

    from ssgan.driver.cluster import scoped_environ

    monkeypatch.setenv("SSGAN_T_USER", "mine")
    monkeypatch.delenv("SSGAN_T_NEW", raising=False)
    monkeypatch.setenv("SSGAN_T_EXACT", "before")
    with scoped_environ({"SSGAN_T_USER": "default", "SSGAN_T_NEW": "1"}, {"SSGAN_T_EXACT": "now"}):
        assert os.environ["SSGAN_T_USER"] == "mine"  # the user's value wins over a default
        assert os.environ["SSGAN_T_NEW"] == "1" and os.environ["SSGAN_T_EXACT"] == "now"
    assert os.environ["SSGAN_T_USER"] == "mine" and "SSGAN_T_NEW" not in os.environ
    assert os.environ["SSGAN_T_EXACT"] == "before"


@pytest.mark.parametrize("address", [None, "127.0.0.1:6379"])
def test_ray_workers_drop_only_the_placement_group_cleaners_notice(monkeypatch, address):
    """Every Tune trial's Train controller ends before its placement group is removed, so Ray's cleaner
    warned once per trial of a healthy sweep. Each Ray worker process installs a filter for that one
    notice on the cleaner's own logger; its other warnings (a group it failed to remove) pass."""
    import logging
    import pickle

    import ray
    from ray import cloudpickle
    import ray.train.v2._internal.execution.controller.placement_group_cleaner as cleaner

    from ssgan.driver import cluster

    seen = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: seen.update(kwargs))
    monkeypatch.setattr(cluster, "_warm_autoscaling_coordinator", lambda: None)
    cluster.connect(Cluster(address=address, worker_env=(("SSGAN_T", "1"),)))
    hook = seen["runtime_env"]["worker_process_setup_hook"]
    assert seen["runtime_env"]["env_vars"]["SSGAN_T"] == "1"  # the worker env still travels with it

    logger = logging.getLogger(cluster.PG_CLEANER_LOGGER)
    assert cleaner.logger is logger  # the filter sits on the logger the cleaner logs to
    before = list(logger.filters)
    try:
        hook = pickle.loads(cloudpickle.dumps(hook))  # what Ray does: the hook travels by value to each worker
        hook()
        hook()  # a worker that runs it twice gets one filter
        added = [f for f in logger.filters if f not in before]
        assert len(added) == 1

        def passes(msg):
            return added[0].filter(logging.LogRecord(logger.name, logging.WARNING, __file__, 1, msg, (), None))

        assert not passes(f"{cluster.PG_CLEANER_NOTICE} (abc) is dead. Cleaning up placement group")
        assert passes("Failed to clean up placement group: boom")
    finally:
        logger.filters[:] = before


def test_streamed_pool_trains_every_epoch(ray_local, prepared_dir, tiny_config, tmp_path):
    """train.stream_unlabeled: true: the pool reaches the ranks through Ray Data (read on the driver's
    node, split across the two ranks), labeled and val through the object store."""
    import dataclasses

    from ssgan.driver.data_refs import StreamedSplits, send_splits, stream_wanted

    assert not stream_wanted(None, prepared_dir)  # a small pool: whole through the object store
    assert isinstance(send_splits(prepared_dir, 2, True), StreamedSplits)
    cfg = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, stream_unlabeled=True,
                                                                     steps_per_epoch=None))
    cluster = Cluster(storage_path=str(tmp_path))
    state = fit(TrainJob(cfg, str(prepared_dir)), cluster, name="ssgan-streamed")
    finish_run(cluster, "ssgan-streamed")
    from ssgan.data.parquet import describe

    rows = describe(prepared_dir / "unlabeled.parquet")[1]
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    assert state["step"] == 2 * max(1, rows // (cfg.train.batch_size * 2))  # one pass of each rank's share per epoch
