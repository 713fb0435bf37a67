"""D's unlabeled-data terms as the step composes them: views, VAT's perturbation, both modes, EMA warm-up."""
import dataclasses

import pytest
import torch
from torch.optim.swa_utils import AveragedModel

from ssgan.training import losses
from ssgan.training.models import Generator, build_models
from ssgan.training.step import Batch, StepOptions, discriminator_losses, ema_average_fn, ema_update, ssgan_step, supervised_step
from ssgan.training.unlabeled_terms import Terms, vat_perturbation, weighted_sum
from ssgan.training.views import random_translate

ALL = Terms(consistency_weight=0.5, vat_weight=1.0, vat_epsilon=2.0, entropy_weight=0.1)


def d_and_batch(model_cfg, n=6, seed=0):
    torch.manual_seed(seed)
    d, g = build_models(model_cfg, (1, 8, 8), 10)
    gen = torch.Generator().manual_seed(seed)
    batch = Batch(torch.rand(n, 1, 8, 8, generator=gen), torch.arange(n) % 10, torch.rand(n, 1, 8, 8, generator=gen))
    return d, g, batch


def test_consistency_is_zero_without_noise_or_translation_and_positive_with_noise(tiny_config):
    quiet = dataclasses.replace(tiny_config.model, input_noise=0.0, hidden_noise=0.0)
    d, _, batch = d_and_batch(quiet)
    assert discriminator_losses(d, batch, None, Terms(consistency_weight=1.0))["loss_cons"].item() == 0.0
    shifted = discriminator_losses(d, batch, None, Terms(consistency_weight=1.0, consistency_shift=1))["loss_cons"]
    assert shifted.item() > 0
    d, _, batch = d_and_batch(tiny_config.model)  # D's Gaussian noise: two independent draws
    assert discriminator_losses(d, batch, None, Terms(consistency_weight=1.0))["loss_cons"].item() > 0


def test_vat_perturbation_has_norm_epsilon_and_leaves_d_alone(tiny_config):
    d, _, batch = d_and_batch(tiny_config.model)
    d.train()
    r = vat_perturbation(d, batch.x_unlabeled, epsilon=2.5)
    assert r.shape == batch.x_unlabeled.shape
    assert r.flatten(1).norm(dim=1).tolist() == pytest.approx([2.5] * len(r), rel=1e-5)
    assert d.training and all(p.grad is None for p in d.parameters())


def test_vat_direction_raises_the_kl_more_than_a_random_one(tiny_config):
    quiet = dataclasses.replace(tiny_config.model, input_noise=0.0, hidden_noise=0.0)
    d, _, batch = d_and_batch(quiet, n=32)
    with torch.no_grad():  # sharpen D so the KL has curvature to find
        d.head.parametrizations.weight.original0.mul_(20)
    x = batch.x_unlabeled
    r_adv = vat_perturbation(d, x, epsilon=0.5)
    r_rand = 0.5 * losses.l2_normalize(torch.randn_like(x))
    with torch.no_grad():
        clean = d(x)[0]
        kl_adv, kl_rand = (losses.kl_to_target(clean, d(x + r)[0]).item() for r in (r_adv, r_rand))
    assert kl_adv > 2 * kl_rand


def test_random_translate_moves_each_image_within_the_range():
    x = torch.zeros(50, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0
    assert torch.equal(random_translate(x, 0), x)
    out = random_translate(x, 2)
    assert out.shape == x.shape and out.sum().item() == 50  # a centre pixel never leaves the image
    rows, cols = (out[:, 0].flatten(1).argmax(1) // 9, out[:, 0].flatten(1).argmax(1) % 9)
    assert set(rows.tolist()) <= set(range(2, 7)) and set(cols.tolist()) <= set(range(2, 7))
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 1  # offsets differ between images


def test_each_active_term_is_reported_and_weighted(tiny_config):
    d, g, batch = d_and_batch(tiny_config.model)
    out = discriminator_losses(d, batch, g(g.sample_latent(6)).detach(), ALL)
    assert set(out) == {"loss_sup", "loss_unl", "loss_cons", "loss_vat", "loss_ent"}
    expected = 0.5 * out["loss_cons"] + 1.0 * out["loss_vat"] + 0.1 * out["loss_ent"]
    assert weighted_sum(out, ALL).item() == pytest.approx(expected.item())
    assert set(discriminator_losses(d, batch, None, Terms())) == {"loss_sup"}


def test_supervised_arm_with_terms_trains_d_and_never_calls_g(tiny_config, monkeypatch):
    d, _, batch = d_and_batch(tiny_config.model)
    opt = torch.optim.Adam(d.parameters(), lr=1e-3)
    monkeypatch.setattr(Generator, "forward", lambda *a, **k: pytest.fail("the supervised arm called G"))
    before = [p.detach().clone() for p in d.parameters()]
    out = supervised_step(d, opt, batch, ALL)
    assert set(out) == {"loss_sup", "loss_cons", "loss_vat", "loss_ent"}
    assert any(not torch.equal(a, b) for a, b in zip(before, d.parameters()))


def test_ssgan_step_with_terms_differs_from_without(tiny_config):
    results = []
    for terms in (Terms(), ALL):
        d, g, batch = d_and_batch(tiny_config.model, seed=3)
        opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in (d, g)]
        out = ssgan_step(d, g, *opts, batch, StepOptions(terms=terms))
        assert all(torch.isfinite(v) for v in out.values())
        results.append(torch.cat([p.detach().flatten() for p in d.parameters()]))
    assert not torch.equal(*results)


def test_ema_warmup_first_updates_follow_the_formula():
    model = torch.nn.Linear(1, 1, bias=False)
    ema = AveragedModel(model, multi_avg_fn=ema_average_fn(0.999, warmup=True))
    expected = None
    for t, value in enumerate([1.0, 2.0, 4.0, 8.0]):
        with torch.no_grad():
            model.weight.fill_(value)
        ema_update(ema, model)
        decay = (1 + t) / (10 + t)
        expected = value if t == 0 else decay * expected + (1 - decay) * value
        assert ema.module.weight.item() == pytest.approx(expected)
    plain = AveragedModel(model, multi_avg_fn=ema_average_fn(0.999, warmup=False))
    ema_update(plain, model)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema_update(plain, model)
    assert plain.module.weight.item() == pytest.approx(0.999 * 8.0)
