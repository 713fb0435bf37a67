"""The per-worker training loop run by Ray Train on every rank. It knows nothing of Tune or MLflow runs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ssgan import losses
from ssgan.batches import WorkerData, batch_stream
from ssgan.checkpoint import load_training_state
from ssgan.config import Config
from ssgan.data.parquet import read_split
from ssgan.models import build_models
from ssgan.reporting import Rank0Reporter
from ssgan.step import ssgan_step, supervised_step, unwrap
from ssgan.tracking import RunRef


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs; absolute paths, since Ray workers run in their own directories."""
    config: Config
    data_dir: str
    run: RunRef | None = None


def _mean_across_ranks(stats: dict[str, float], device: torch.device) -> dict[str, float]:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return stats
    keys = sorted(stats)
    t = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, (t / dist.get_world_size()).tolist()))


def _restore(checkpoint, d, g, opt_d, opt_g) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        state = load_training_state(Path(directory))
    unwrap(d).load_state_dict(state["discriminator"])
    unwrap(g).load_state_dict(state["generator"])
    opt_d.load_state_dict(state["opt_d"])
    opt_g.load_state_dict(state["opt_g"])
    return state


def _quiet_report_log() -> None:
    """Ray Train 2.60 logs every report at INFO under a logger named by its *file path*, which
    escapes RunConfig's LoggingConfig; silence that one logger so the per-epoch line stays readable."""
    import logging

    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # a Ray without that module logs differently
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    _quiet_report_log()
    job: TrainJob = loop_config["job"]
    cfg, tc = job.config, job.config.train
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()

    torch.manual_seed(tc.seed)  # identical initial weights on every rank
    data = WorkerData.load(Path(job.data_dir), rank, world)
    d, g = build_models(cfg.model, data.meta.image_shape, data.meta.num_classes)
    d, g = ray.train.torch.prepare_model(d), ray.train.torch.prepare_model(g)
    opt_d = torch.optim.Adam(d.parameters(), lr=tc.lr, betas=(tc.beta1, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), lr=tc.lr, betas=(tc.beta1, 0.999))

    state = _restore(ray.train.get_checkpoint(), d, g, opt_d, opt_g)
    done = state["epoch"] if state else 0  # epochs are numbered from 1; the state holds the last one finished
    # Noise and data order differ per rank and per epoch, and a resumed run continues rather than repeats them.
    torch.manual_seed(tc.seed * 100_003 + rank * 1009 + done)
    rng = np.random.default_rng([tc.seed, rank, done])
    steps_per_epoch = tc.steps_per_epoch or data.steps_per_epoch(tc.batch_size, world)
    total_steps = steps_per_epoch * tc.epochs
    step = state["step"] if state else 0
    batches = batch_stream(data, tc.batch_size, rng, device)
    reporter = (Rank0Reporter(cfg, data.meta, read_split(Path(job.data_dir) / "val.parquet"), job.run, state)
                if rank == 0 else None)
    if rank == 0:
        print(f"[ssgan] {tc.mode}: {world} worker(s), {steps_per_epoch} steps/epoch x {tc.epochs} epochs, "
              f"{len(data.labeled.images)} labeled, {data.unlabeled_total} unlabeled", flush=True)

    for epoch in range(done + 1, tc.epochs + 1):
        d.train()
        g.train()
        sums: dict[str, float] = {}
        for _ in range(steps_per_epoch):
            factor = losses.linear_decay(step, total_steps, tc.lr_decay_fraction)
            for opt in (opt_d, opt_g):
                for group in opt.param_groups:
                    group["lr"] = tc.lr * factor
            batch = next(batches)
            if tc.mode == "supervised":
                out = supervised_step(d, opt_d, batch)
            else:
                out = ssgan_step(d, g, opt_d, opt_g, batch, tc.unsupervised_weight)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            step += 1
        stats = _mean_across_ranks({k: v / steps_per_epoch for k, v in sums.items()}, device)
        if reporter is None:
            ray.train.report(stats, checkpoint=None)
            continue
        training_state = {"discriminator": unwrap(d).state_dict(), "generator": unwrap(g).state_dict(),
                          "opt_d": opt_d.state_dict(), "opt_g": opt_g.state_dict()}
        metrics, tmp = reporter.end_epoch(epoch, step, stats, unwrap(d), unwrap(g), training_state)
        with tmp:
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp.name))
