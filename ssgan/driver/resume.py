"""Which interrupted run a training continues.

A run is keyed by everything that decides its result: the model and train params (less the purely
operational ones), the bytes of the prepared splits it reads and the training code. The key names its Ray Train run
directory and tags its MLflow run, so rerunning `ssgan train` (or `dvc repro`) after the driver
died continues that run from its last checkpoint, while any other configuration starts its own.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

import torch

from ssgan.training.checkpoint import STATE_FILE
from ssgan.config import Config, to_dict
from ssgan.data.identity import TRAINING_SPLITS, splits_digest
from ssgan.driver import lease
from ssgan.util.names import UnsafeNameError, check_name, inside

# Train params that change how a run is operated or placed, not what it computes.
OPERATIONAL = ("checkpoint_every", "max_failures", "sample_rows", "resources_per_worker", "accelerator_type")
# Ray Train run directories are named RUN_PREFIX + the run key. The storage may be shared (other
# users, `dvc exp --jobs`), so a run deletes only its own directory once its outputs are written,
# and another run's only when that run's driver has gone (its lease, ssgan.driver.lease, is stale)
# and last renewed it more than ABANDONED_AFTER_S ago: until then the run can still be resumed.
# A directory without a lease is never touched.
RUN_PREFIX = "ssgan-"
LEGACY_LEASE_FILE = "ssgan-lease.json"
ABANDONED_AFTER_S = 7 * 24 * 3600


class CheckpointMismatchError(RuntimeError):
    """A run directory holds a checkpoint of another configuration."""


def run_key(cfg: Config, data_dir: Path, code: str = "") -> str:
    """16 hex digits: a hash of the train-relevant params, the training splits and the training code
    (`code`: a digest of the train stage's code, so a code change starts a fresh run)."""
    train = {k: v for k, v in to_dict(cfg.train).items() if k not in OPERATIONAL}
    params = json.dumps({"model": to_dict(cfg.model), "train": train}, sort_keys=True)
    data = splits_digest(data_dir, TRAINING_SPLITS)
    return hashlib.sha256(f"{params}\n{data}\n{code}".encode()).hexdigest()[:16]


def _filesystem(storage: str):
    from pyarrow import fs

    return fs.FileSystem.from_uri(storage)


def latest_state(storage: str, name: str) -> dict[str, Any] | None:
    """The newest checkpoint's training state in `<storage>/<name>`, or None when it has none."""
    from pyarrow import fs

    filesystem, root = _filesystem(storage)
    infos = filesystem.get_file_info(fs.FileSelector(f"{root}/{name}", allow_not_found=True))
    # Ray names them checkpoint_<timestamp>: the newest sorts last.
    checkpoints = sorted(i.path for i in infos if i.type == fs.FileType.Directory and i.base_name.startswith("checkpoint_"))
    for path in reversed(checkpoints):
        state_path = f"{path}/{STATE_FILE}"
        if filesystem.get_file_info(state_path).type != fs.FileType.File:
            continue  # a checkpoint whose upload was cut short
        with filesystem.open_input_file(state_path) as f:  # torch.load needs a seekable file
            return torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
    return None


def check_same_run(state: dict[str, Any], key: str, where: str) -> None:
    found = state.get("run_key", "")
    if found != key:
        raise CheckpointMismatchError(
            f"{where}: checkpoint of run key {found or '(none)'}, but this configuration's run key is {key}; "
            f"it was written for other params or data. Rerun with `ssgan train --restart` to start fresh")


def remove_run(storage: str, name: str) -> None:
    from pyarrow import fs

    check_name(name, "run")
    filesystem, root = _filesystem(storage)
    _delete_inside(filesystem, root, f"{root}/{name}", fs)


def _delete_inside(filesystem, root: str, path: str, fs) -> None:
    if not inside(root, path):  # whatever reached here, nothing outside the storage root is deleted
        raise UnsafeNameError(f"{path}: refusing to delete, it is not inside the storage {root}")
    if filesystem.get_file_info(path).type == fs.FileType.Directory:
        filesystem.delete_dir(path)


def _legacy_lease_age(filesystem, path: str, now: float) -> float | None:
    """Age of the lease that ssgan versions before leases had owners kept inside the run directory."""
    try:
        with filesystem.open_input_stream(f"{path}/{LEGACY_LEASE_FILE}") as f:
            return now - float(json.loads(f.read())["renewed"])
    except (OSError, ValueError, KeyError):  # missing (FileNotFoundError is an OSError) or unreadable
        return None


def prune_runs(storage: str, finished: str, now: float | None = None, abandoned_after: float = ABANDONED_AFTER_S) -> None:
    """Delete the finished run's own directory (its caller holds its lease), and other ssgan runs
    interrupted long ago: their lease is stale (its holder is gone) and was last renewed more than
    `abandoned_after` seconds ago. Runs in progress anywhere, and directories without a lease, stay."""
    from pyarrow import fs

    now = time.time() if now is None else now
    filesystem, root = _filesystem(storage)
    infos = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True))
    for info in infos:
        if info.type != fs.FileType.Directory or not info.base_name.startswith(RUN_PREFIX):
            continue
        if info.base_name == finished:
            _delete_inside(filesystem, root, info.path, fs)
            continue
        holder = lease.read_lease(filesystem, lease.lease_path(root, info.base_name))
        if holder is None:
            age = _legacy_lease_age(filesystem, info.path, now)
            if age is not None and age > abandoned_after:
                _delete_inside(filesystem, root, info.path, fs)
            continue
        if holder.live(now) or now - holder.renewed <= abandoned_after:
            continue
        try:  # taken first, so that no rerun resumes the run while its directory goes
            me = lease.acquire(storage, info.base_name, f"run {info.base_name}", "left as it is")
        except lease.RunInUseError:
            continue
        _delete_inside(filesystem, root, info.path, fs)
        lease.release(storage, info.base_name, me)
