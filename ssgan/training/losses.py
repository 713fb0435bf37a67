"""Losses of the K+1-class semi-supervised GAN (Salimans et al. 2016), as pure functions.

The discriminator outputs K class logits l; the fake class has an implicit logit 0, so
D(x) = p(real | x) = Z / (Z + 1) with Z = sum_k exp(l_k), i.e. logit(D(x)) = LSE(l).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def supervised_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the K real classes; the fake logit cancels for labeled real data."""
    return F.cross_entropy(logits, labels)


def unsupervised_kplus1(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """-E_real[log D(x)] - E_fake[log(1 - D(G(z)))], halved as in the paper's code.

    With s = LSE(l): -log D = softplus(s) - s and -log(1 - D) = softplus(s).
    """
    lse_real = torch.logsumexp(logits_real, dim=1)
    lse_fake = torch.logsumexp(logits_fake, dim=1)
    return -0.5 * lse_real.mean() + 0.5 * F.softplus(lse_real).mean() + 0.5 * F.softplus(lse_fake).mean()


def feature_matching(features_real: torch.Tensor, features_fake: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between the batch means of D's intermediate features."""
    return (features_real.mean(dim=0) - features_fake.mean(dim=0)).pow(2).mean()


def linear_decay(step: int, total_steps: int, decay_fraction: float) -> float:
    """Learning-rate factor: 1 until the last `decay_fraction` of training, then linearly to 0."""
    decay_steps = decay_fraction * total_steps
    if decay_steps <= 0:
        return 1.0
    remaining = total_steps - step
    return float(min(1.0, max(0.0, remaining / decay_steps)))


def generator_nonsaturating(logits_fake: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))], the non-saturating form of the minimax game: softplus(s) - s with s = LSE(l)."""
    lse = torch.logsumexp(logits_fake, dim=1)
    return (F.softplus(lse) - lse).mean()


def ema_decay_at(updates: int, decay: float, warmup: bool) -> float:
    """EMA decay for the update after `updates` earlier ones: min(decay, (1 + t) / (10 + t)) with warm-up.

    Without it a 0.999 average still holds 37 % of the first weights after 1,000 steps; with it the
    average covers about the last t / 10 steps until it reaches the nominal decay (TF's num_updates rule).
    """
    return min(decay, (1.0 + updates) / (10.0 + updates)) if warmup else decay


# Unlabeled-data terms on D's class distribution p(y | x, real) = softmax over the K logits. Each is a
# mean over the batch, so DDP's average of rank gradients is the gradient of the whole batch.

def consistency_mse(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two views' class distributions (Pi-model; CT-GAN's consistency term)."""
    return (F.softmax(logits_a, dim=1) - F.softmax(logits_b, dim=1)).pow(2).mean()


def kl_to_target(target_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(p_target || p) per example, averaged; the target is a constant (VAT's clean prediction)."""
    target = F.log_softmax(target_logits.detach(), dim=1)
    return (target.exp() * (target - F.log_softmax(logits, dim=1))).sum(dim=1).mean()


def conditional_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the class distribution: minimising it asks for confident predictions on unlabeled data."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1).mean()


def l2_normalize(d: torch.Tensor) -> torch.Tensor:
    """Each example's perturbation scaled to unit L2 norm (over all its pixels)."""
    flat = d.flatten(1)
    return (flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)).view_as(d)


def confident_targets(target_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-labels (argmax class) and their mask (1.0 where the class probability is >= threshold)."""
    probs = F.softmax(target_logits.detach(), dim=1)
    confidence, labels = probs.max(dim=1)
    return labels, (confidence >= threshold).to(probs.dtype)


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """FixMatch's unlabeled loss: cross-entropy to the pseudo-labels where masked in, averaged over the
    *whole* batch (not over the confident ones), so a batch with few confident images weighs little."""
    return (F.cross_entropy(logits, labels, reduction="none") * mask).mean()


def sigmoid_rampup(step: int, rampup_steps: int) -> float:
    """exp(-5 (1 - t)^2) for t = step / rampup_steps clipped to [0, 1] (Laine & Aila; Mean Teacher); 1 without ramp."""
    if rampup_steps <= 0:
        return 1.0
    t = min(1.0, max(0.0, step / rampup_steps))
    return float(math.exp(-5.0 * (1.0 - t) ** 2))
