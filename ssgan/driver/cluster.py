"""The cluster a training runs on: connect to (or start) Ray, check its resources and run storage.

Ray reads its settings from environment variables; they are set here only for the calls that read
them (`scoped_environ`) and restored afterwards, so the library leaves the process as it found it.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Iterator, Mapping

from ssgan.config import Cluster

# Ray Train's controller polls workers every 2 s by default, which made each per-epoch report
# block that long; 0.1 s keeps short epochs cheap. Its print patch would show every line twice.
# Train V2 copies RAY_TRAIN_* variables from the driver to its controller and workers.
RAY_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
# A private local Ray serves one training on one machine: nothing to preempt, and the watcher's
# actor prints an error line from C++ on every run.
LOCAL_RAY_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


# Train V2 starts a detached placement-group cleaner per training that logs a warning when the
# controller is gone and its group is not yet removed, which is how every Tune trial ends (finished or
# stopped by ASHA): a healthy sweep printed it once per trial. That notice is dropped in Ray's
# worker processes (where the cleaner runs); the same logger's failures (a group it could not
# remove, an unreachable state API) still show.
PG_CLEANER_LOGGER = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
PG_CLEANER_NOTICE = "Detected that the Ray Train controller actor"


def quiet_worker_notices() -> None:
    """Ray's worker_process_setup_hook: runs once in each Ray worker process, never in the driver."""
    import logging

    class DropCleanupNotice(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith(PG_CLEANER_NOTICE)

    logger = logging.getLogger(PG_CLEANER_LOGGER)
    if not any(type(f).__name__ == DropCleanupNotice.__name__ for f in logger.filters):
        logger.addFilter(DropCleanupNotice())


# Ray sends the hook to every worker process, on every node; by name (or by reference) it would have
# to import ssgan first, and a process on a node without ssgan would die before it could say so
# (ssgan.driver.nodes names such a node in one line). Under a module name no process imports,
# the function travels by value.
quiet_worker_notices.__module__ = "ssgan_worker_setup"


def _runtime_env(env_vars: Mapping[str, str], ship_code: bool = False) -> dict:
    env = {"env_vars": dict(env_vars), "worker_process_setup_hook": quiet_worker_notices}
    if ship_code:
        from ssgan.util.code import package_dir

        # Uploaded once per job to the cluster's GCS and unpacked on each node, ahead of any installed copy.
        env.update(py_modules=[str(package_dir())], excludes=["__pycache__", "*.pyc"])
    return env


class ClusterError(RuntimeError):
    """The Ray cluster cannot run the job as configured."""


@contextlib.contextmanager
def scoped_environ(defaults: Mapping[str, str], exact: Mapping[str, str] | None = None) -> Iterator[None]:
    """For the block, set each of `defaults` the process does not already hold (a user's own value
    wins) and each of `exact` as given; afterwards put back what was there. Ray reads these when it
    starts processes, a trainer or a tuner, not after."""
    exact = dict(exact or {})
    before = {k: os.environ.get(k) for k in (*defaults, *exact)}
    os.environ.update({k: v for k, v in defaults.items() if k not in os.environ})
    os.environ.update(exact)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# Ray caches its auth mode when first imported. "token" is 2.60's default for a new local instance;
# set explicitly before the import, it keeps auth on without the warning that it was turned on.
AUTH_ENV = {"RAY_AUTH_MODE": "token"}
_ray_imported_with_auth_env = False  # whether this process's first `import ray` saw AUTH_ENV


def import_ray():
    """`import ray`, with AUTH_ENV in force when this is the process's first import of Ray."""
    global _ray_imported_with_auth_env
    first = "ray" not in sys.modules
    with scoped_environ(AUTH_ENV):
        import ray
    _ray_imported_with_auth_env = _ray_imported_with_auth_env or (first and os.environ.get("RAY_AUTH_MODE") is None)
    return ray


def _init_auth_env() -> dict[str, str]:
    """AUTH_ENV for `ray.init` when Ray was imported under it (the driver's cached mode and the new
    cluster's must agree); else nothing, and Ray turns token auth on for a new local instance itself."""
    return dict(AUTH_ENV) if _ray_imported_with_auth_env else {}


def connect(cluster: Cluster, extra_cpus: int = 0) -> None:
    """Join the cluster at `cluster.address`, or start a private local Ray that never looks for others.

    `extra_cpus` logical CPUs are added to a local instance: a sweep's trial functions each hold a
    sliver of a CPU while they wait on their workers, which must not cost a worker its core.

    Ray's own processes (Train's placement-group cleaner, the state API) find "their" cluster from
    RAY_ADDRESS or /tmp/ray/ray_current_cluster; with another instance on the machine (a second
    checkout, a teammate) they would pick the wrong one or raise "Found multiple active Ray
    instances". So every Ray process we start is told the exact address through its runtime env.
    """
    ray = import_ray()
    if ray.is_initialized():
        return
    if cluster.address is not None:
        # A Ray Client address (ray://) is not a GCS address the cluster's processes could use.
        env = {**dict(cluster.worker_env), **({} if "://" in cluster.address else {"RAY_ADDRESS": cluster.address})}
        with scoped_environ({**_init_auth_env(), **RAY_ENV}):
            ray.init(address=cluster.address, runtime_env=_runtime_env(env, cluster.ship_code), log_to_driver=True)
        _warm_autoscaling_coordinator()
        return
    port = _free_port()
    # The local raylet and every worker it starts inherit this environment; the GCS port is the
    # only way to choose the new GCS's port before it starts.
    with scoped_environ({**_init_auth_env(), **RAY_ENV, **LOCAL_RAY_ENV}, {"RAY_GCS_SERVER_PORT": str(port)}):
        # address="local" always starts a new instance and ignores RAY_ADDRESS and ray_current_cluster.
        ray.init(address="local", num_cpus=local_cpus() + extra_cpus, log_to_driver=True,
                 runtime_env=_runtime_env({**dict(cluster.worker_env), "RAY_ADDRESS": f"127.0.0.1:{port}"}))
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


def check_resources(num_workers: int, use_gpu: bool, resources: Mapping[str, float] | None = None) -> None:
    """Fail fast where Ray would otherwise wait forever for resources it does not have. `resources`:
    what each worker holds (train.resources_per_worker), beyond one CPU or GPU."""
    import ray

    total = ray.cluster_resources()
    kind = "GPU" if use_gpu else "CPU"
    _check(num_workers, total.get(kind, 0), kind, "the Ray cluster")
    for name, amount in (resources or {}).items():
        need = amount * num_workers
        if name not in ("CPU", "GPU") and total.get(name, 0) < need:
            raise ClusterError(f"train.resources_per_worker.{name}: {num_workers} worker(s) x {amount:g} needs {need:g}; "
                               f"the Ray cluster has {total.get(name, 0):g}: start nodes with `ray start --resources "
                               f"'{{\"{name}\": N}}'` (a private local Ray has none) or change the key")


def check_storage(storage: str) -> None:
    """The run storage must be writable from here, checked before Ray starts: a local path, or a URI
    (s3://, gs://) by writing and deleting a small object (whether the *nodes* reach it is
    ssgan.driver.nodes's check)."""
    if "://" in storage:
        _check_storage_uri(storage)
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


def _check_storage_uri(storage: str) -> None:
    from pyarrow import fs

    from ssgan.util.redact import redact_uri

    try:
        filesystem, root = fs.FileSystem.from_uri(storage)
        filesystem.create_dir(root, recursive=True)
        # Named per process: two drivers checking the same storage at once must not delete each other's.
        probe = f"{root.rstrip('/')}/.ssgan-write-check-{uuid.uuid4().hex}"
        with filesystem.open_output_stream(probe) as f:
            f.write(b"ssgan checks that it can write its run storage\n")
        filesystem.delete_file(probe)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ClusterError(f"{redact_uri(storage)}: cannot write the Ray Train storage ({reason}); check that the bucket "
                           f"exists and that this machine's credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and "
                           f"AWS_ENDPOINT_URL for MinIO or Ceph; GOOGLE_APPLICATION_CREDENTIALS for gs://) may write it") from None
