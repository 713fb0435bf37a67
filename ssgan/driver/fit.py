"""Run the per-worker loop on the cluster with a TorchTrainer, and pass each epoch to the driver side.

It knows nothing of the model; it hands a `TrainJob` to `train_loop_per_worker` on every rank.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

from ssgan.config import Cluster
from ssgan.driver.cluster import LOCAL_RAY_ENV, RAY_ENV, check_resources, connect, scoped_environ, storage_uri
from ssgan.driver.data_refs import STREAM_DATASET, StreamedSplits, send_splits
from ssgan.driver.resume import prune_runs
from ssgan.driver.worker import train_loop_per_worker
from ssgan.training.batches import SplitFiles
from ssgan.training.checkpoint import load_training_state
from ssgan.training.loop import TrainJob
from ssgan.util.code import package_digest

STREAM_WORKER_CPU = 0.5  # a CPU worker's share while the pool streams (train.resources_per_worker overrides)


def epoch_callback(on_epoch: Callable[[dict[str, float]], None] | None):
    """A Ray Train callback that hands rank 0's per-epoch metrics to `on_epoch` on the driver side.

    Ray runs it in the Train controller, which Ray pins to the driver's node, so `on_epoch` may
    write the driver's files (the local MLflow store) while the workers run anywhere. Metrics are
    passed on only once a checkpoint covering them is persisted: after a worker failure Ray
    restarts from that checkpoint and repeats the later epochs, which must not be logged twice.
    """
    from ray.train import UserCallback

    class EpochMetrics(UserCallback):
        def __init__(self) -> None:
            self.pending: list[dict[str, float]] = []

        def after_report(self, run_context, metrics, checkpoint) -> None:
            self.pending.append(metrics[0])
            if checkpoint is not None:
                for epoch_metrics in self.pending:
                    if on_epoch is not None:
                        on_epoch(epoch_metrics)
                self.pending.clear()

        def after_exception(self, run_context, worker_exceptions) -> None:
            self.pending.clear()  # these epochs will be trained again from the last checkpoint

    return EpochMetrics()


def fit(job: TrainJob, cluster: Cluster, name: str,
        on_epoch: Callable[[dict[str, float]], None] | None = None, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train on the cluster; return the final training state (history, best-on-val model).

    `on_epoch` (picklable: it runs in Ray's controller process) receives rank 0's metrics of each
    epoch exactly once, with `epoch` and `step`. `callbacks` are further Ray Train callbacks (a
    sweep's trial passes Tune's, which forwards every report to the Tune scheduler). The caller
    holds the run's lease (ssgan.driver.lease), or its sweep's. Prepared files named by path (the
    driver's) are read here and shipped through the object store; a sweep's trial passes the
    references its driver shipped instead.
    """
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    tc = job.config.train
    connect(cluster)
    storage = storage_uri(cluster.storage_path)
    if isinstance(job.data, SplitFiles):
        job = dataclasses.replace(job, data=send_splits(Path(job.data.data_dir), tc.num_workers, tc.stream_unlabeled))
    streamed = isinstance(job.data, StreamedSplits)
    resources = tc.worker_resources()
    if streamed and tc.resources_per_worker is None and not tc.use_gpu:
        # Ray Data's read tasks get only the CPUs Train does not reserve: a whole CPU per worker on a
        # node with as many CPUs as workers would leave them none, and ingest would wait forever.
        resources = {"CPU": STREAM_WORKER_CPU}
    check_resources(tc.num_workers, tc.use_gpu, resources)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"job": job, "code": package_digest()},
        datasets={STREAM_DATASET: job.data.dataset} if streamed else None,
        dataset_config=DataConfig(datasets_to_split=[STREAM_DATASET]) if streamed else None,
        scaling_config=ScalingConfig(num_workers=tc.num_workers, use_gpu=tc.use_gpu,
                                     resources_per_worker=resources, accelerator_type=tc.accelerator_type),
        run_config=RunConfig(name=name, storage_path=storage,
                             checkpoint_config=CheckpointConfig(num_to_keep=1),
                             failure_config=FailureConfig(max_failures=tc.max_failures),
                             callbacks=[epoch_callback(on_epoch), *callbacks],
                             # Ray Train logs every report at INFO; our per-epoch line says what matters.
                             logging_config=LoggingConfig(log_level="WARNING")),
    )
    # Train V2 copies RAY_TRAIN_* variables from the driver's environment to its controller and workers.
    with scoped_environ({**RAY_ENV, **(LOCAL_RAY_ENV if cluster.address is None else {})}):
        result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train run {name!r} ended without a checkpoint")
    with result.checkpoint.as_directory() as directory:
        return load_training_state(Path(directory))


def finish_run(cluster: Cluster, name: str) -> None:
    """Once the caller has written all it owes (model file, MLflow), the run's directory goes, with
    other runs abandoned long ago; until then a crash resumes from the final checkpoint."""
    prune_runs(storage_uri(cluster.storage_path), finished=name)
