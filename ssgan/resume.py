"""Which interrupted run a training continues.

A run is keyed by everything that decides its result: the model and train params (less the purely
operational ones) and the bytes of the prepared splits it reads. The key names its Ray Train run
directory and tags its MLflow run, so rerunning `ssgan train` (or `dvc repro`) after the driver
died continues that run from its last checkpoint, while any other configuration starts its own.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch

from ssgan.checkpoint import STATE_FILE
from ssgan.config import Config, to_dict

# Train params that change how a run is operated, not what it computes.
OPERATIONAL = ("checkpoint_every", "max_failures", "sample_rows")
# The splits training reads (test is evaluate's).
TRAIN_SPLITS = ("labeled", "unlabeled", "val")
# Ray Train run directories are named RUN_PREFIX + the run key; interrupted ones are kept for a
# while (their checkpoints are the only copy of the work), finished ones are deleted.
RUN_PREFIX = "ssgan-"
KEEP_UNFINISHED_RUNS = 3


class CheckpointMismatchError(RuntimeError):
    """A run directory holds a checkpoint of another configuration."""


def data_hash(data_dir: Path) -> str:
    h = hashlib.md5()
    for name in TRAIN_SPLITS:
        with open(Path(data_dir) / f"{name}.parquet", "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def run_key(cfg: Config, data_dir: Path) -> str:
    """16 hex digits: a hash of the train-relevant params and of the prepared data's hash."""
    train = {k: v for k, v in to_dict(cfg.train).items() if k not in OPERATIONAL}
    params = json.dumps({"model": to_dict(cfg.model), "train": train}, sort_keys=True)
    return hashlib.sha256(f"{params}\n{data_hash(data_dir)}".encode()).hexdigest()[:16]


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

    filesystem, root = _filesystem(storage)
    if filesystem.get_file_info(f"{root}/{name}").type == fs.FileType.Directory:
        filesystem.delete_dir(f"{root}/{name}")


def prune_runs(storage: str, finished: str, keep_unfinished: int) -> None:
    """Delete the finished run's directory and all but the newest `keep_unfinished` other ssgan runs."""
    from pyarrow import fs

    filesystem, root = _filesystem(storage)
    infos = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True))
    runs = sorted((i for i in infos if i.type == fs.FileType.Directory and i.base_name.startswith(RUN_PREFIX)),
                  key=lambda i: i.mtime_ns or 0)
    others = [i for i in runs if i.base_name != finished]
    doomed = [i for i in runs if i.base_name == finished] + others[:max(0, len(others) - keep_unfinished)]
    for info in doomed:
        filesystem.delete_dir(info.path)
