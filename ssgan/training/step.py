"""One optimisation step of the semi-supervised GAN: a D update, then a G update.

D and G may be DDP-wrapped. G's update runs through the *unwrapped* D with D's parameters frozen:
D's gradients are not wanted there, and a second pass through the DDP wrapper before D's next
backward would break DDP's gradient bucketing.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

import torch.distributed as dist

from ssgan.metrics import SECOND_G_STEP_SHARE
from ssgan.training import losses
from ssgan.training.unlabeled_terms import Terms, extra_views, target_logits, term_losses, weighted_sum
from ssgan.training.views import weak_view


@dataclass
class Batch:
    x_labeled: torch.Tensor
    y_labeled: torch.Tensor
    x_unlabeled: torch.Tensor


@dataclass(frozen=True)
class StepOptions:
    unsupervised_weight: float = 1.0
    generator_loss: str = "feature_matching"  # or "minimax"
    terms: Terms = Terms()  # D's extra unlabeled-data terms, in both modes
    second_g_step_above: float | None = None  # the port's rule: G steps again while its loss exceeds this


@dataclass(frozen=True)
class StepContext:
    """What changes between steps besides the batch: the teacher (D's EMA; None without one) and the
    consistency weight's ramp-up factor."""
    teacher: nn.Module | None = None
    ramp: float = 1.0


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return getattr(model, "module", model)


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def supervised_step(d: nn.Module, opt_d: torch.optim.Optimizer, batch: Batch,
                    terms: Terms = Terms(), context: StepContext = StepContext()) -> dict[str, torch.Tensor]:
    """The baseline: the same D and optimizer, labeled cross-entropy, plus the unlabeled-data terms
    when any is on (the Pi-model / Mean Teacher / FixMatch / VAT baselines; no G is involved)."""
    if not terms.active:
        logits, _ = d(weak_view(batch.x_labeled, terms.views))
        loss_sup = losses.supervised_ce(logits, batch.y_labeled)
        out = {"loss_sup": loss_sup}
        total = loss_sup
    else:
        out = discriminator_losses(d, batch, None, terms, context.teacher)
        total = out["loss_sup"] + weighted_sum(out, terms, context.ramp)
    opt_d.zero_grad(set_to_none=True)
    total.backward()
    opt_d.step()
    return {k: v.detach() for k, v in out.items()}


def _generate(g: nn.Module, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    plain = unwrap(g)
    y = plain.sample_classes(n, device=device)
    return g(plain.sample_latent(n, device=device), y), y


def discriminator_losses(d: nn.Module, batch: Batch, fake: torch.Tensor | None,
                         terms: Terms = Terms(), teacher: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """D's losses by metric name, each a mean over its examples: under DDP the average of the ranks'
    gradients is then the gradient of one batch of all ranks' examples together. `fake` None: no
    GAN loss (the supervised arm with unlabeled-data terms). `teacher`: D's EMA, for
    consistency_target teacher."""
    x_labeled = weak_view(batch.x_labeled, terms.views)
    views = extra_views(unwrap(d), batch.x_unlabeled, terms)
    target = None
    if terms.needs_target:
        from_teacher = terms.consistency_target == "teacher"
        if from_teacher and teacher is None:
            raise ValueError("consistency_target teacher needs D's EMA (train.ema_decay > 0)")
        target = target_logits(teacher if from_teacher else unwrap(d), batch.x_unlabeled, terms)
    parts = [x_labeled, batch.x_unlabeled, *views, *([] if fake is None else [fake])]
    # One D forward over all parts: D has no batch-dependent layers, and DDP wants one forward per backward.
    logits, _ = d(torch.cat(parts))
    chunks = logits.split([len(p) for p in parts])
    logits_lab, logits_unl = chunks[0], chunks[1]
    out = {"loss_sup": losses.supervised_ce(logits_lab, batch.y_labeled)}
    if fake is not None:
        out["loss_unl"] = losses.unsupervised_kplus1(logits_unl, chunks[-1])
    out.update(term_losses(logits_unl, list(chunks[2:2 + len(views)]), terms, target))
    return out


def ssgan_step(d: nn.Module, g: nn.Module, opt_d: torch.optim.Optimizer, opt_g: torch.optim.Optimizer,
               batch: Batch, options: StepOptions, context: StepContext = StepContext()) -> dict[str, torch.Tensor]:
    n_unl = len(batch.x_unlabeled)
    device = batch.x_unlabeled.device
    with torch.no_grad():
        fake, _ = _generate(g, n_unl, device)
    d_losses = discriminator_losses(d, batch, fake, options.terms, context.teacher)
    opt_d.zero_grad(set_to_none=True)
    (d_losses["loss_sup"] + options.unsupervised_weight * d_losses["loss_unl"]
     + weighted_sum(d_losses, options.terms, context.ramp)).backward()
    opt_d.step()

    d_plain = unwrap(d)
    with frozen(d_plain):
        loss_gen = generator_step(g, d_plain, opt_g, batch.x_unlabeled, options.generator_loss)
        out = {**{k: v.detach() for k, v in d_losses.items()}, "loss_gen": loss_gen}
        if options.second_g_step_above is not None:
            again = _rank_mean(loss_gen) > options.second_g_step_above  # one decision for every DDP rank
            if again:
                out["loss_gen"] = generator_step(g, d_plain, opt_g, batch.x_unlabeled, options.generator_loss)
            out[SECOND_G_STEP_SHARE] = torch.tensor(float(again), device=device)
    return out


def generator_step(g: nn.Module, d_plain: nn.Module, opt_g: torch.optim.Optimizer, x_unlabeled: torch.Tensor,
                   generator_loss: str) -> torch.Tensor:
    """One G update against the (frozen, unwrapped) D; returns G's loss, detached."""
    fake, y_fake = _generate(g, len(x_unlabeled), x_unlabeled.device)
    logits_fake, features_fake = d_plain(fake)
    if generator_loss == "minimax":
        loss_gen = losses.generator_nonsaturating(logits_fake)
    else:
        with torch.no_grad():
            _, features_real = d_plain(x_unlabeled)
        loss_gen = losses.feature_matching(features_real, features_fake)
    if y_fake is not None:  # a conditional G is also asked to make samples D puts in class y
        loss_gen = loss_gen + losses.supervised_ce(logits_fake, y_fake)
    opt_g.zero_grad(set_to_none=True)
    loss_gen.backward()
    opt_g.step()
    return loss_gen.detach()


def _rank_mean(value: torch.Tensor) -> float:
    """A scalar's mean over the DDP ranks (itself outside DDP): a per-step sync, paid only by the rule."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return float(value)


def ema_average_fn(decay: float, warmup: bool):
    """AveragedModel's `multi_avg_fn`: lerp towards the current weights with the (warmed-up) decay."""
    def average(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        torch._foreach_lerp_(averaged, current, 1.0 - losses.ema_decay_at(int(num_averaged), decay, warmup))
    return average


@torch.no_grad()
def ema_update(ema: AveragedModel, model: nn.Module) -> None:
    """`ema.update_parameters(model)` without its per-step host-to-device copy of the step count,
    which would make the host wait for the GPU every step. Same arithmetic: copy at the first
    update, then the EMA function built into `ema`; buffers are copied, not averaged."""
    averaged, current = list(ema.module.parameters()), [p.detach() for p in model.parameters()]
    if int(ema.n_averaged) == 0:  # n_averaged stays on the CPU, so this reads no GPU memory
        for a, c in zip(averaged, current, strict=True):
            a.copy_(c)
    else:
        ema.multi_avg_fn(averaged, current, ema.n_averaged)
    for a, c in zip(ema.module.buffers(), model.buffers(), strict=True):
        a.copy_(c)
    ema.n_averaged += 1
