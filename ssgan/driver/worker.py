"""The Ray Train side of a worker: its `Session` (rank, device, DDP wrapping, checkpoints, reports)
and the function TorchTrainer runs on every rank."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import torch

from ssgan.driver.cluster import ClusterError
from ssgan.driver.nodes import SHIP_HINT
from ssgan.training.loop import run_training
from ssgan.util.code import package_digest, package_dir


class RaySession:
    """The Ray Train worker's view: rank, device, DDP wrapping, checkpoints and reports."""

    def __init__(self) -> None:
        import ray.train
        import ray.train.torch

        self._train, self._torch = ray.train, ray.train.torch
        ctx = ray.train.get_context()
        self.rank, self.world_size = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return self._torch.prepare_model(model)

    @contextlib.contextmanager
    def restore(self) -> Iterator[Path | None]:
        checkpoint = self._train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as directory:
            yield Path(directory)

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        checkpoint = self._train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        self._train.report(metrics, checkpoint=checkpoint)


def _quiet_report_log() -> None:
    """Ray Train 2.60 logs every report at INFO under a logger named by its *file path*, which
    escapes RunConfig's LoggingConfig; silence that one logger so the per-epoch line stays readable."""
    import logging

    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # a Ray without that module logs differently
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def check_code(driver_digest: str) -> None:
    """Refuse to train with ssgan code other than the driver's (another version installed on this node)."""
    mine = package_digest()
    if mine != driver_digest:
        import ray

        raise ClusterError(f"the ssgan code on node {ray.util.get_node_ip_address()} ({package_dir()}, digest {mine}) "
                           f"differs from the driver's (digest {driver_digest}): install the same ssgan on every node, "
                           f"or {SHIP_HINT}")


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The function Ray Train runs on every rank."""
    _quiet_report_log()
    check_code(loop_config["code"])
    run_training(loop_config["job"], RaySession())
