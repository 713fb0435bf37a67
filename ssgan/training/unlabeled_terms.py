"""D's extra unlabeled-data terms, composed from the config: consistency (the Pi-model; CT-GAN's term
on D), virtual adversarial training (VAT) and conditional entropy.

The same terms serve the SSGAN step and the supervised arm, which is the ablation that says what the
GAN adds over the term alone. The losses themselves are pure functions in `ssgan.training.losses`; this module
builds the extra views of the unlabeled batch (a second noisy/translated copy, an adversarial copy)
that the step sends through D in its one forward, and weighs the resulting losses.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ssgan.training import losses
from ssgan.metrics import LOSS_CONS, LOSS_ENT, LOSS_VAT

# VAT's finite-difference step for the power iteration (Miyato et al. 2018 use 1e-6 on [0, 1] images).
VAT_XI = 1e-6


@dataclass(frozen=True)
class Terms:
    consistency_weight: float = 0.0
    consistency_shift: int = 0  # pixels of random translation of the second view (0: D's noise alone)
    vat_weight: float = 0.0
    vat_epsilon: float = 1.0  # L2 norm of the adversarial perturbation, per image
    entropy_weight: float = 0.0

    @property
    def active(self) -> bool:
        return self.consistency_weight > 0 or self.vat_weight > 0 or self.entropy_weight > 0


def random_translate(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each image moved by its own integer offset in [-max_shift, max_shift]^2, zero-filled."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), device=x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (N, W)
    # Advanced indices split by a slice put their broadcast dims first: (N, H, W, C).
    out = padded[torch.arange(n, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def vat_perturbation(d: nn.Module, x: torch.Tensor, epsilon: float, xi: float = VAT_XI) -> torch.Tensor:
    """r_adv of norm `epsilon` per image: one power iteration on KL(p(x) || p(x + r)).

    Runs the plain (unwrapped) D in eval mode, so the direction is that of the deterministic network,
    not of a noise draw; only r's gradient is taken, so D's parameters (and DDP) see nothing of it.
    """
    was_training = d.training
    d.eval()
    try:
        with torch.no_grad():
            clean, _ = d(x)
        r = (xi * losses.l2_normalize(torch.randn_like(x))).requires_grad_(True)
        with torch.enable_grad():
            perturbed, _ = d(x + r)
            (grad,) = torch.autograd.grad(losses.kl_to_target(clean, perturbed), r)
    finally:
        d.train(was_training)
    return epsilon * losses.l2_normalize(grad)


def extra_views(d: nn.Module, x_unlabeled: torch.Tensor, terms: Terms) -> list[torch.Tensor]:
    """The unlabeled batch's extra copies D must see: [second view] if consistency, [x + r_adv] if VAT."""
    views = []
    if terms.consistency_weight > 0:
        views.append(random_translate(x_unlabeled, terms.consistency_shift))
    if terms.vat_weight > 0:
        views.append(x_unlabeled + vat_perturbation(d, x_unlabeled, terms.vat_epsilon))
    return views


def term_losses(logits_unlabeled: torch.Tensor, view_logits: list[torch.Tensor], terms: Terms) -> dict[str, torch.Tensor]:
    """Each active term's loss by its metric name; `view_logits` in the order `extra_views` made them."""
    views = iter(view_logits)
    out = {}
    if terms.consistency_weight > 0:
        out[LOSS_CONS] = losses.consistency_mse(logits_unlabeled, next(views))
    if terms.vat_weight > 0:
        out[LOSS_VAT] = losses.kl_to_target(logits_unlabeled, next(views))
    if terms.entropy_weight > 0:
        out[LOSS_ENT] = losses.conditional_entropy(logits_unlabeled)
    return out


def weighted_sum(named_losses: dict[str, torch.Tensor], terms: Terms) -> torch.Tensor | float:
    """The terms' share of D's objective; other losses in `named_losses` (loss_sup, ...) are skipped."""
    weights = {LOSS_CONS: terms.consistency_weight, LOSS_VAT: terms.vat_weight, LOSS_ENT: terms.entropy_weight}
    return sum((weights[k] * v for k, v in named_losses.items() if k in weights), 0.0)
