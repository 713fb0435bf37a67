"""Losses of the K+1-class semi-supervised GAN (Salimans et al. 2016), as pure functions.

The discriminator outputs K class logits l; the fake class has an implicit logit 0, so
D(x) = p(real | x) = Z / (Z + 1) with Z = sum_k exp(l_k), i.e. logit(D(x)) = LSE(l).
"""
from __future__ import annotations

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
