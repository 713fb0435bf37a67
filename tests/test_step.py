import numpy as np
import torch

from ssgan.batches import index_stream
from ssgan.models import build_models
from ssgan.step import Batch, ssgan_step, supervised_step


def _setup(cfg, seed=0):
    torch.manual_seed(seed)
    d, g = build_models(cfg.model, (1, 8, 8), 10)
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)
    batch = Batch(torch.rand(6, 1, 8, 8, generator=gen), torch.arange(6) % 10, torch.rand(6, 1, 8, 8, generator=gen))
    return d, g, opt_d, opt_g, batch


def test_model_shapes(tiny_config):
    d, g = build_models(tiny_config.model, (1, 8, 8), 10)
    logits, features = d(torch.rand(5, 1, 8, 8))
    assert logits.shape == (5, 10) and features.shape == (5, tiny_config.model.d_hidden[-1])
    images = g(g.sample_latent(5))
    assert images.shape == (5, 1, 8, 8) and images.min() >= 0 and images.max() <= 1


def test_ssgan_step_updates_both_networks(tiny_config):
    d, g, opt_d, opt_g, batch = _setup(tiny_config)
    before_d = [p.detach().clone() for p in d.parameters()]
    before_g = [p.detach().clone() for p in g.parameters()]
    out = ssgan_step(d, g, opt_d, opt_g, batch, unsupervised_weight=1.0)
    assert set(out) == {"loss_sup", "loss_unl", "loss_gen"} and all(torch.isfinite(v) for v in out.values())
    assert any(not torch.equal(a, b) for a, b in zip(before_d, d.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_g, g.parameters()))
    assert all(p.requires_grad for p in d.parameters())  # unfrozen after G's update


def test_supervised_step_leaves_generator_alone(tiny_config):
    d, g, opt_d, opt_g, batch = _setup(tiny_config)
    before_g = [p.detach().clone() for p in g.parameters()]
    out = supervised_step(d, opt_d, batch)
    assert set(out) == {"loss_sup"}
    assert all(torch.equal(a, b) for a, b in zip(before_g, g.parameters()))


def test_fixed_seed_gives_identical_steps(tiny_config):
    results = []
    for _ in range(2):
        d, g, opt_d, opt_g, batch = _setup(tiny_config, seed=5)
        losses = [ssgan_step(d, g, opt_d, opt_g, batch, 1.0) for _ in range(3)]
        results.append([{k: float(v) for k, v in step.items()} for step in losses])
    assert results[0] == results[1]


def test_index_stream_visits_every_item_once_per_pass():
    stream = index_stream(10, 4, np.random.default_rng(0))
    first = np.concatenate([next(stream) for _ in range(5)])  # 20 indices = two passes
    assert sorted(first[:10]) == list(range(10)) and sorted(first[10:]) == list(range(10))
