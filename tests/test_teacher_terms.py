"""Teacher targets, confident pseudo-labels and the second G step as the step composes them."""
import copy
import dataclasses

import numpy as np
import pytest
import torch

from ssgan import metrics as M
from ssgan.config import ViewSpec
from ssgan.training.step import Batch, StepContext, StepOptions, discriminator_losses, ssgan_step, supervised_step
from ssgan.training.unlabeled_terms import Terms, target_logits, weighted_sum
from tests.test_unlabeled_terms import d_and_batch

TEACHER = Terms(consistency_weight=1.0, consistency_target="teacher")
PSEUDO = Terms(pseudo_label_weight=1.0, pseudo_label_threshold=0.0)  # every image is "confident"


def test_the_teacher_receives_no_gradient_and_sets_the_target(tiny_config):
    d, _, batch = d_and_batch(tiny_config.model)
    teacher = copy.deepcopy(d)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.5 * torch.randn_like(p))
    before = [p.detach().clone() for p in teacher.parameters()]
    torch.manual_seed(5)
    out = discriminator_losses(d, batch, None, TEACHER, teacher)
    (out["loss_sup"] + weighted_sum(out, TEACHER)).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None for p in d.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    # The same step with D as its own teacher gives another consistency loss: the target is the teacher's.
    torch.manual_seed(5)
    assert discriminator_losses(d, batch, None, TEACHER, d)["loss_cons"].item() != pytest.approx(out["loss_cons"].item())


def test_teacher_target_is_the_clean_weak_view_prediction(tiny_config):
    d, _, batch = d_and_batch(tiny_config.model)
    d.train()
    a = target_logits(d, batch.x_unlabeled, TEACHER)
    b = target_logits(d, batch.x_unlabeled, TEACHER)
    assert torch.equal(a, b) and d.training and not a.requires_grad  # eval mode: no noise; mode restored


def test_teacher_target_without_a_teacher_is_an_error(tiny_config):
    d, _, batch = d_and_batch(tiny_config.model)
    with pytest.raises(ValueError, match="train.ema_decay > 0"):
        discriminator_losses(d, batch, None, TEACHER, None)


def test_pseudo_label_loss_is_the_ce_to_the_targets_confident_classes(tiny_config):
    quiet = dataclasses.replace(tiny_config.model, input_noise=0.0, hidden_noise=0.0)
    d, _, batch = d_and_batch(quiet)
    out = discriminator_losses(d, batch, None, PSEUDO)
    with torch.no_grad():
        logits, _ = d(batch.x_unlabeled)  # no noise, no views: the student's view is the image itself
    expected = torch.nn.functional.cross_entropy(logits, logits.argmax(1))
    assert out["loss_pseudo"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["pseudo_label_share"].item() == 1.0
    never = discriminator_losses(d, batch, None, dataclasses.replace(PSEUDO, pseudo_label_threshold=1.0))
    assert never["loss_pseudo"].item() == 0.0 and never["pseudo_label_share"].item() == 0.0


def test_new_terms_run_in_both_modes_with_views(tiny_config):
    terms = Terms(consistency_weight=1.0, consistency_target="teacher", pseudo_label_weight=1.0,
                  pseudo_label_threshold=0.1, views=ViewSpec(flip=True, translate=1, cutout=3))
    d, g, batch = d_and_batch(tiny_config.model)
    teacher = copy.deepcopy(d)
    opt_d, opt_g = (torch.optim.Adam(m.parameters(), lr=1e-3) for m in (d, g))
    out = supervised_step(d, opt_d, batch, terms, StepContext(teacher, 0.5))
    assert {"loss_sup", "loss_cons", "loss_pseudo", "pseudo_label_share"} <= set(out)
    out = ssgan_step(d, g, opt_d, opt_g, batch, StepOptions(terms=terms), StepContext(teacher))
    assert {"loss_unl", "loss_gen", "loss_cons", "loss_pseudo"} <= set(out)
    assert all(torch.isfinite(v) for v in out.values())


def test_ramp_scales_only_the_consistency_weight():
    named = {"loss_sup": torch.tensor(9.0), "loss_cons": torch.tensor(2.0), "loss_pseudo": torch.tensor(3.0)}
    terms = Terms(consistency_weight=1.0, pseudo_label_weight=0.5)
    assert weighted_sum(named, terms, ramp=0.25).item() == pytest.approx(0.25 * 2.0 + 0.5 * 3.0)


@pytest.mark.parametrize("above, g_steps", [(0.0, 2), (1e9, 1)])
def test_second_g_step_when_g_loss_exceeds_the_threshold(tiny_config, above, g_steps):
    d, g, batch = d_and_batch(tiny_config.model)
    opt_d, opt_g = (torch.optim.Adam(m.parameters(), lr=1e-3) for m in (d, g))
    out = ssgan_step(d, g, opt_d, opt_g, batch, StepOptions(second_g_step_above=above))
    step_counts = {int(s["step"]) for s in opt_g.state.values()}
    assert step_counts == {g_steps}
    assert out["second_g_step_share"].item() == float(g_steps == 2)
    assert "second_g_step_share" not in ssgan_step(d, g, opt_d, opt_g, batch, StepOptions())


def test_confident_label_stats_hand_computed():
    probs = np.array([[0.96, 0.04], [0.5, 0.5], [0.02, 0.98], [0.97, 0.03]])
    labels = np.array([0, 1, 0, 0])
    stats = M.confident_label_stats(probs, labels, 0.95)
    assert stats == {M.PSEUDO_LABEL_SHARE_VAL: 0.75, M.PSEUDO_LABEL_ACCURACY_VAL: pytest.approx(2 / 3)}
    assert M.confident_label_stats(probs, labels, 0.99) == {M.PSEUDO_LABEL_SHARE_VAL: 0.0}
