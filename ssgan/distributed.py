"""The driver: connect to (or start) Ray, check resources, run the per-worker loop with a TorchTrainer.

It knows nothing of the model; it hands a `TrainJob` to `train_loop_per_worker` on every rank.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ssgan.checkpoint import load_training_state
from ssgan.config import Cluster
from ssgan.train import TrainJob, train_loop_per_worker

# Ray Train's controller polls workers every 2 s by default, which made each per-epoch report
# block that long; 0.1 s keeps short epochs cheap. Its print patch would show every line twice.
RAY_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}


class ClusterError(RuntimeError):
    """The Ray cluster cannot run the job as configured."""


def connect(cluster: Cluster) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address=cluster.address, runtime_env={"env_vars": RAY_ENV}, log_to_driver=True)


def check_resources(num_workers: int, use_gpu: bool) -> None:
    """Fail fast where Ray would otherwise wait forever for resources it does not have."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0), total.get("GPU", 0)
    if use_gpu and gpus < num_workers:
        raise ClusterError(f"train.num_workers={num_workers} with train.use_gpu=true needs {num_workers} GPU(s); "
                           f"the Ray cluster has {gpus:g}. Lower train.num_workers or set train.use_gpu: false")
    if not use_gpu and cpus < num_workers:
        raise ClusterError(f"train.num_workers={num_workers} needs {num_workers} CPU(s); the Ray cluster has {cpus:g}. "
                           f"Lower train.num_workers or add nodes (RAY_ADDRESS)")


def fit(job: TrainJob, cluster: Cluster, name: str) -> dict[str, Any]:
    """Train on the cluster; return the final training state (history, best-on-val model)."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    tc = job.config.train
    connect(cluster)
    check_resources(tc.num_workers, tc.use_gpu)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"job": job},
        scaling_config=ScalingConfig(num_workers=tc.num_workers, use_gpu=tc.use_gpu,
                                     resources_per_worker={"GPU": 1} if tc.use_gpu else {"CPU": 1}),
        run_config=RunConfig(name=name, storage_path=str(Path(cluster.storage_path).expanduser()),
                             checkpoint_config=CheckpointConfig(num_to_keep=1),
                             failure_config=FailureConfig(max_failures=cluster.max_failures),
                             # Ray Train logs every report at INFO; our per-epoch line says what matters.
                             logging_config=LoggingConfig(log_level="WARNING")),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train run {name!r} ended without a checkpoint")
    with result.checkpoint.as_directory() as directory:
        return load_training_state(Path(directory))
