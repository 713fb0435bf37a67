"""D's extra unlabeled-data terms, composed from the config: consistency (the Pi-model, CT-GAN's term
on D; or Mean Teacher's, to D's EMA), confident pseudo-labels (FixMatch), virtual adversarial training
(VAT) and conditional entropy.

The same terms serve the SSGAN step and the supervised arm, which is the ablation that says what the
GAN adds over the term alone. The losses themselves are pure functions in `ssgan.training.losses`; this module
builds the extra views of the unlabeled batch (the student's perturbed copy, an adversarial copy, the target's weak view)
that the step sends through D in its one forward, and weighs the resulting losses.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ssgan.training import losses
from ssgan.config import ViewSpec
from ssgan.metrics import LOSS_CONS, LOSS_ENT, LOSS_PSEUDO, LOSS_VAT, PSEUDO_LABEL_SHARE
from ssgan.training.views import random_translate, strong_view, weak_view

# VAT's finite-difference step for the power iteration (Miyato et al. 2018 use 1e-6 on [0, 1] images).
VAT_XI = 1e-6


@dataclass(frozen=True)
class Terms:
    consistency_weight: float = 0.0
    consistency_shift: int = 0  # pixels of random translation of the student's view without views (0: D's noise alone)
    vat_weight: float = 0.0
    vat_epsilon: float = 1.0  # L2 norm of the adversarial perturbation, per image
    entropy_weight: float = 0.0
    consistency_target: str = "student"  # student: the Pi-model's second noisy pass; teacher: D's EMA, no gradient
    pseudo_label_weight: float = 0.0
    pseudo_label_threshold: float = 0.95
    views: ViewSpec = ViewSpec()  # resolved by ssgan.config.views_for; all zero: D's noise only

    @property
    def active(self) -> bool:
        return (self.consistency_weight > 0 or self.vat_weight > 0 or self.entropy_weight > 0
                or self.pseudo_label_weight > 0)

    @property
    def student_view(self) -> bool:
        """Consistency and pseudo-labels share one (strongly) perturbed view of the unlabeled batch."""
        return self.consistency_weight > 0 or self.pseudo_label_weight > 0

    @property
    def needs_target(self) -> bool:
        """A no-gradient target pass on the weak view: pseudo-labels, or the teacher's consistency target."""
        return self.pseudo_label_weight > 0 or (self.consistency_weight > 0 and self.consistency_target == "teacher")


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
    """The unlabeled batch's extra copies D must see: [the student's view] if consistency or pseudo-labels
    (the strong view with train.augment, else D's noise and `consistency_shift`), [x + r_adv] if VAT."""
    views = []
    if terms.student_view:
        views.append(strong_view(x_unlabeled, terms.views) if terms.views != ViewSpec()
                     else random_translate(x_unlabeled, terms.consistency_shift))
    if terms.vat_weight > 0:
        views.append(x_unlabeled + vat_perturbation(d, x_unlabeled, terms.vat_epsilon))
    return views


@torch.no_grad()
def target_logits(net: nn.Module, x_unlabeled: torch.Tensor, terms: Terms) -> torch.Tensor:
    """The target network's logits on the weak view, in eval mode (no noise) and without a graph: the
    pseudo-labels and the teacher's consistency target. The net is D's EMA or the plain D itself."""
    was_training = net.training
    net.eval()
    try:
        logits, _ = net(weak_view(x_unlabeled, terms.views))
    finally:
        net.train(was_training)
    return logits


def term_losses(logits_unlabeled: torch.Tensor, view_logits: list[torch.Tensor], terms: Terms,
                target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Each active term's loss by its metric name (and the share of confident pseudo-labels);
    `view_logits` in the order `extra_views` made them, `target` from `target_logits` when needed."""
    views = iter(view_logits)
    student = next(views) if terms.student_view else None
    out = {}
    if terms.consistency_weight > 0:
        reference = target if terms.consistency_target == "teacher" else logits_unlabeled
        out[LOSS_CONS] = losses.consistency_mse(reference, student)
    if terms.pseudo_label_weight > 0:
        labels, mask = losses.confident_targets(target, terms.pseudo_label_threshold)
        out[LOSS_PSEUDO] = losses.masked_cross_entropy(student, labels, mask)
        out[PSEUDO_LABEL_SHARE] = mask.mean()
    if terms.vat_weight > 0:
        out[LOSS_VAT] = losses.kl_to_target(logits_unlabeled, next(views))
    if terms.entropy_weight > 0:
        out[LOSS_ENT] = losses.conditional_entropy(logits_unlabeled)
    return out


def weighted_sum(named_losses: dict[str, torch.Tensor], terms: Terms, ramp: float = 1.0) -> torch.Tensor | float:
    """The terms' share of D's objective, the consistency weight scaled by its ramp-up factor; other
    entries of `named_losses` (loss_sup, pseudo_label_share, ...) are skipped."""
    weights = {LOSS_CONS: ramp * terms.consistency_weight, LOSS_VAT: terms.vat_weight, LOSS_ENT: terms.entropy_weight,
               LOSS_PSEUDO: terms.pseudo_label_weight}
    return sum((weights[k] * v for k, v in named_losses.items() if k in weights), 0.0)
