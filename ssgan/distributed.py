"""The driver: connect to (or start) Ray, check resources, run the per-worker loop with a TorchTrainer.

It knows nothing of the model; it hands a `TrainJob` to `train_loop_per_worker` on every rank.
"""
from __future__ import annotations

import functools
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from ssgan.checkpoint import load_training_state
from ssgan.config import Cluster
from ssgan.resume import prune_runs, renew_lease
from ssgan.train import TrainJob, train_loop_per_worker

# Ray Train's controller polls workers every 2 s by default, which made each per-epoch report
# block that long; 0.1 s keeps short epochs cheap. Its print patch would show every line twice.
# Train V2 copies RAY_TRAIN_* variables from the driver to its controller and workers.
RAY_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
# A private local Ray serves one training on one machine: nothing to preempt, and the watcher's
# actor prints an error line from C++ on every run.
LOCAL_RAY_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


class ClusterError(RuntimeError):
    """The Ray cluster cannot run the job as configured."""


def connect(cluster: Cluster, extra_cpus: int = 0) -> None:
    """Join the cluster at `cluster.address`, or start a private local Ray that never looks for others.

    `extra_cpus` logical CPUs are added to a local instance: a sweep's trial functions each hold a
    sliver of a CPU while they wait on their workers, which must not cost a worker its core.

    Ray's own processes (Train's placement-group cleaner, the state API) find "their" cluster from
    RAY_ADDRESS or /tmp/ray/ray_current_cluster; with another instance on the machine (a second
    checkout, a teammate) they would pick the wrong one or raise "Found multiple active Ray
    instances". So every Ray process we start is told the exact address through its runtime env.
    """
    before_ray_import()
    import ray

    if ray.is_initialized():
        return
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    if cluster.address is not None:
        # A Ray Client address (ray://) is not a GCS address the cluster's processes could use.
        env = {**dict(cluster.worker_env), **({} if "://" in cluster.address else {"RAY_ADDRESS": cluster.address})}
        ray.init(address=cluster.address, runtime_env={"env_vars": env}, log_to_driver=True)
        _warm_autoscaling_coordinator()
        return
    for key, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(key, value)
    port = _free_port()
    os.environ["RAY_GCS_SERVER_PORT"] = str(port)  # the only way to choose the new GCS's port before it starts
    try:
        # address="local" always starts a new instance and ignores RAY_ADDRESS and ray_current_cluster.
        ray.init(address="local", num_cpus=local_cpus() + extra_cpus, log_to_driver=True,
                 runtime_env={"env_vars": {**dict(cluster.worker_env), "RAY_ADDRESS": f"127.0.0.1:{port}"}})
    finally:
        os.environ.pop("RAY_GCS_SERVER_PORT", None)
    _warm_autoscaling_coordinator()


def _warm_autoscaling_coordinator(timeout_s: float = 120.0) -> None:
    """Start Ray's AutoscalingCoordinator actor now and wait for it. Train V2's controller creates it on
    first use and gives the call 5 s; on a loaded machine starting the actor's process takes longer,
    and the controller logs `Failed to send resource request ... GetTimeoutError` with a traceback
    for a healthy run. Started here, it is already up when the controller asks."""
    import ray

    try:
        from ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator import (
            get_or_create_autoscaling_coordinator)
    except ImportError:  # another Ray: nothing to warm
        return
    try:
        ray.get(get_or_create_autoscaling_coordinator().cancel_request.remote(requester_id="ssgan-warm-up"),
                timeout=timeout_s)
    except Exception:  # noqa: BLE001 - a warm-up only: the controller retries on its own schedule
        pass


def before_ray_import() -> None:
    """Call before the first `import ray` of a process (the Tune driver imports it before connecting)."""
    if "ray" not in sys.modules:
        # Ray caches this at import. "token" is 2.60's default for a new local instance; setting it
        # explicitly keeps auth on and drops the warning that it was turned on.
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_cpus() -> int:
    """CPUs this process may use (affinity-aware); the local Ray instance is started with this many."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_local_cpus(cluster: Cluster, num_workers: int, use_gpu: bool) -> None:
    """Without RAY_ADDRESS the answer is known before Ray starts: refuse in milliseconds, not after start-up."""
    if cluster.address is not None:
        return
    if use_gpu:
        import torch

        _check(num_workers, torch.cuda.device_count(), "GPU", "this machine")
    else:
        _check(num_workers, local_cpus(), "CPU", "this machine")


def _check(num_workers: int, have: float, kind: str, where: str) -> None:
    if have >= num_workers:
        return
    if kind == "GPU":
        raise ClusterError(f"train.num_workers={num_workers} with train.use_gpu=true needs {num_workers} GPU(s); "
                           f"{where} has {have:g}. Lower train.num_workers or set train.use_gpu: false")
    raise ClusterError(f"train.num_workers={num_workers} needs {num_workers} CPU(s); {where} has {have:g}. "
                       f"Lower train.num_workers or add nodes (RAY_ADDRESS)")


def check_resources(num_workers: int, use_gpu: bool) -> None:
    """Fail fast where Ray would otherwise wait forever for resources it does not have."""
    import ray

    total = ray.cluster_resources()
    kind = "GPU" if use_gpu else "CPU"
    _check(num_workers, total.get(kind, 0), kind, "the Ray cluster")


def epoch_callback(on_epoch: Callable[[dict[str, float]], None] | None, renew: Callable[[], None]):
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
                renew()
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
    sweep's trial passes Tune's, which forwards every report to the Tune scheduler).
    """
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    tc = job.config.train
    connect(cluster)
    check_resources(tc.num_workers, tc.use_gpu)
    storage = storage_uri(cluster.storage_path)
    renew_lease(storage, name)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"job": job},
        scaling_config=ScalingConfig(num_workers=tc.num_workers, use_gpu=tc.use_gpu,
                                     resources_per_worker={"GPU": 1} if tc.use_gpu else {"CPU": 1}),
        run_config=RunConfig(name=name, storage_path=storage,
                             checkpoint_config=CheckpointConfig(num_to_keep=1),
                             failure_config=FailureConfig(max_failures=tc.max_failures),
                             callbacks=[epoch_callback(on_epoch, functools.partial(renew_lease, storage, name)),
                                        *callbacks],
                             # Ray Train logs every report at INFO; our per-epoch line says what matters.
                             logging_config=LoggingConfig(log_level="WARNING")),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train run {name!r} ended without a checkpoint")
    with result.checkpoint.as_directory() as directory:
        return load_training_state(Path(directory))


def finish_run(cluster: Cluster, name: str) -> None:
    """Once the caller has written all it owes (model file, MLflow), the run's directory goes, with
    other runs abandoned long ago; until then a crash resumes from the final checkpoint."""
    prune_runs(storage_uri(cluster.storage_path), finished=name)


def check_storage(storage: str) -> None:
    """A local storage path must be writable (checked before Ray starts); a URI is Ray's to check."""
    if "://" in storage:
        return
    path = Path(storage)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ClusterError(f"{storage}: Ray Train storage is not writable ({err.strerror}); "
                           f"set SSGAN_RAY_STORAGE to a writable (on a cluster: shared) path") from None


def storage_uri(path: str) -> str:
    """A local path made absolute (Ray needs it), or a URI (s3://, gs://, ...) as given."""
    return path if "://" in path else str(Path(path).expanduser().resolve())
