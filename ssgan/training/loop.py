"""The per-worker training loop. It imports no Ray, Tune or MLflow: it reaches Ray Train only through
a `Session` (ssgan.driver.worker supplies Ray's), so the same loop runs in-process (benchmarks,
tests) with a `LocalSession`.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel

from ssgan.training import losses
from ssgan.training.batches import SplitFiles, SplitSource, WorkerData, batch_stream
from ssgan.training.checkpoint import load_training_state
from ssgan.config import Config, TrainConfig, views_for
from ssgan.training.models import build_models, data_dependent_init
from ssgan.training.rank0 import GeneratorProbe, Rank0Reporter
from ssgan.training.step import Batch, StepContext, StepOptions, ema_average_fn, ema_update, ssgan_step, supervised_step, unwrap
from ssgan.training.unlabeled_terms import Terms


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs. On Ray the data are the driver's object references (ssgan.driver.fit
    turns a path into them); a path (made a `SplitFiles`) serves in-process runs."""
    config: Config
    data: SplitSource
    run_key: str = ""  # stored in every checkpoint, so a resume can check it continues the same run
    # Scores G on val at the epochs quality.every_epochs names (ssgan.quality.probe builds one from
    # the reference classifier); it travels with the job, so workers need no path to the driver's cache.
    probe: GeneratorProbe | None = None

    def __post_init__(self) -> None:
        if isinstance(self.data, (str, Path)):
            object.__setattr__(self, "data", SplitFiles(str(Path(self.data).resolve())))


class Session(Protocol):
    rank: int
    world_size: int
    device: torch.device

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module: ...
    def restore(self) -> contextlib.AbstractContextManager[Path | None]: ...
    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None: ...


class LocalSession:
    """One in-process worker: keeps every report and the last training state in memory."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.rank, self.world_size, self.device = 0, 1, torch.device(device)
        self.reports: list[dict[str, float]] = []
        self.state: dict[str, Any] | None = None

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    @contextlib.contextmanager
    def restore(self) -> Iterator[Path | None]:
        yield None

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        self.reports.append(metrics)
        if checkpoint_dir is not None:
            self.state = load_training_state(checkpoint_dir)


def _mean_across_ranks(stats: dict[str, float], device: torch.device) -> dict[str, float]:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return stats
    keys = sorted(stats)
    t = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, (t / dist.get_world_size()).tolist()))


def build_ema(tc: TrainConfig, d: torch.nn.Module) -> AveragedModel | None:
    """The averaged copy of D that is evaluated and saved (None when train.ema_decay is 0)."""
    return AveragedModel(d, multi_avg_fn=ema_average_fn(tc.ema_decay, tc.ema_warmup)) if tc.ema_decay > 0 else None


def terms_of(tc: TrainConfig, source: str) -> Terms:
    """The step's view of the train.* term keys (the same names in both dataclasses), with the views
    the data source allows."""
    keys = [f.name for f in dataclasses.fields(Terms) if f.name != "views"]
    return Terms(**{k: getattr(tc, k) for k in keys}, views=views_for(source, tc))


def build_optimizers(tc: TrainConfig, d: torch.nn.Module, g: torch.nn.Module) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    return tuple(torch.optim.Adam(m.parameters(), lr=tc.lr, betas=(tc.beta1, 0.999), eps=tc.adam_eps) for m in (d, g))


def restore(state: dict[str, Any], d: torch.nn.Module, g: torch.nn.Module, opt_d: torch.optim.Optimizer,
            opt_g: torch.optim.Optimizer, ema: AveragedModel | None) -> None:
    """Load a checkpoint's models, optimizers (moments and step counts) and EMA in place."""
    d.load_state_dict(state["discriminator"])
    g.load_state_dict(state["generator"])
    opt_d.load_state_dict(state["opt_d"])
    opt_g.load_state_dict(state["opt_g"])
    if ema is not None:
        ema.load_state_dict(state["ema"])


def epoch_seed(seed: int, rank: int, epoch: int) -> np.random.SeedSequence:
    """Independent streams for every (seed, rank, epoch): no two collide, however many epochs or ranks."""
    return np.random.SeedSequence([seed, rank, epoch])


def seed_epoch(data: WorkerData, tc: TrainConfig, rank: int, epoch: int, device: torch.device) -> Iterator[Batch]:
    """Seed this epoch's noise and data order from (seed, rank, epoch) alone.

    An epoch's randomness then depends on nothing that happened before it, so a run resumed from a
    checkpoint (models, optimizers, EMA, step, history restored) continues bit for bit on the CPU.
    """
    sequence = epoch_seed(tc.seed, rank, epoch)
    torch_state, data_state = sequence.spawn(2)
    torch.manual_seed(int(torch_state.generate_state(1, np.uint64)[0]))
    return batch_stream(data, tc.batch_size, np.random.default_rng(data_state), device)


def run_training(job: TrainJob, session: Session) -> None:
    cfg, tc = job.config, job.config.train
    rank, world, device = session.rank, session.world_size, session.device
    torch.manual_seed(tc.seed)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
    data = job.data.worker_data(rank, world)
    d, g = build_models(cfg.model, data.meta.image_shape, data.meta.num_classes)
    d, g = d.to(device), g.to(device)
    # One batch for data-dependent init; training draws from its own seeded stream below. A streamed
    # pool is not read for it (each pass of a Ray Data split is one the ranks take together).
    if data.unlabeled_stream is None:
        first = next(batch_stream(data, tc.batch_size, np.random.default_rng([tc.seed, rank]), device))
        init_images = torch.cat([first.x_labeled, first.x_unlabeled])
    else:
        first = next(batch_stream(dataclasses.replace(data, unlabeled_stream=None, unlabeled=data.labeled), tc.batch_size,
                                  np.random.default_rng([tc.seed, rank]), device))
        init_images = first.x_labeled
    data_dependent_init(d, init_images)
    data_dependent_init(g, g.sample_latent(len(first.x_unlabeled), device=device),
                        g.sample_classes(len(first.x_unlabeled), device=device))
    d, g = session.prepare_model(d), session.prepare_model(g)
    ema = build_ema(tc, unwrap(d))
    opt_d, opt_g = build_optimizers(tc, d, g)

    with session.restore() as directory:
        state = load_training_state(directory) if directory else None
    if state:
        restore(state, unwrap(d), unwrap(g), opt_d, opt_g, ema)
    done = state["epoch"] if state else 0  # epochs are numbered from 1; the state holds the last one finished
    steps_per_epoch = tc.steps_per_epoch or data.steps_per_epoch(tc.batch_size, world)
    total_steps = steps_per_epoch * tc.epochs
    base_lr = tc.lr * (world if tc.scale_lr else 1)
    step = state["step"] if state else 0
    options = StepOptions(tc.unsupervised_weight, cfg.model.generator_loss, terms_of(tc, data.meta.source),
                          tc.second_g_step_above)
    teacher = ema.module if ema is not None else None
    # The network whose confident classes are the pseudo-labels: rank 0 also scores it on val.
    labeler = (teacher if tc.consistency_target == "teacher" else unwrap(d)) if tc.pseudo_label_weight > 0 else None
    reporter = (Rank0Reporter(cfg, data.meta, job.data.val(), state, job.probe)
                if rank == 0 else None)
    if reporter:
        print(f"[ssgan] {tc.mode}: {world} worker(s), {steps_per_epoch} steps/epoch x {tc.epochs} epochs, "
              f"{len(data.labeled.images)} labeled, {data.unlabeled_total} unlabeled", flush=True)

    for epoch in range(done + 1, tc.epochs + 1):
        batches = seed_epoch(data, tc, rank, epoch, device)
        d.train()
        g.train()
        # Summed on the device: a float() per step would make the host wait for the GPU every step.
        sums: dict[str, torch.Tensor] = {}
        for _ in range(steps_per_epoch):
            lr = base_lr * losses.linear_decay(step, total_steps, tc.lr_decay_fraction)
            for opt in (opt_d, opt_g):
                for group in opt.param_groups:
                    group["lr"] = lr
            batch = next(batches)
            context = StepContext(teacher, losses.sigmoid_rampup(step, tc.consistency_rampup * steps_per_epoch))
            if tc.mode == "supervised":
                out = supervised_step(d, opt_d, batch, options.terms, context)
            else:
                out = ssgan_step(d, g, opt_d, opt_g, batch, options, context)
            if ema is not None:
                ema_update(ema, unwrap(d))
            for k, v in out.items():
                sums[k] = sums[k] + v.double() if k in sums else v.double()
            step += 1
        stats = _mean_across_ranks({k: float(v) / steps_per_epoch for k, v in sums.items()}, device)
        if reporter is None:
            session.report(stats, None)
            continue
        training_state = {"run_key": job.run_key,
                          "discriminator": unwrap(d).state_dict(), "generator": unwrap(g).state_dict(),
                          "opt_d": opt_d.state_dict(), "opt_g": opt_g.state_dict(),
                          "ema": ema.state_dict() if ema is not None else None}
        classifier = ema.module if ema is not None else unwrap(d)
        metrics, tmp = reporter.end_epoch(epoch, step, stats, classifier, unwrap(g), training_state, labeler)
        if tmp is None:
            session.report(metrics, None)
            continue
        with tmp:
            session.report(metrics, Path(tmp.name))
