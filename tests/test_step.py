import dataclasses

import numpy as np
import pytest
import torch

from ssgan.training.batches import index_stream
from ssgan.config import ModelConfig
from ssgan.training.models import build_models, data_dependent_init
from ssgan.training.step import Batch, StepOptions, ssgan_step, supervised_step


def _setup(model_cfg, seed=0, shape=(1, 8, 8), n=6):
    torch.manual_seed(seed)
    d, g = build_models(model_cfg, shape, 10)
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)
    batch = Batch(torch.rand(n, *shape, generator=gen), torch.arange(n) % 10, torch.rand(n, *shape, generator=gen))
    return d, g, opt_d, opt_g, batch


def test_model_shapes(tiny_config):
    d, g = build_models(tiny_config.model, (1, 8, 8), 10)
    logits, features = d(torch.rand(5, 1, 8, 8))
    assert logits.shape == (5, 10) and features.shape == (5, tiny_config.model.d_hidden[-1])
    images = g(g.sample_latent(5))
    assert images.shape == (5, 1, 8, 8) and images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize("generator_loss", ["feature_matching", "minimax"])
def test_ssgan_step_updates_both_networks(tiny_config, generator_loss):
    d, g, opt_d, opt_g, batch = _setup(tiny_config.model)
    before_d = [p.detach().clone() for p in d.parameters()]
    before_g = [p.detach().clone() for p in g.parameters()]
    flags = [p.requires_grad for p in d.parameters()]
    out = ssgan_step(d, g, opt_d, opt_g, batch, StepOptions(1.0, generator_loss))
    assert set(out) == {"loss_sup", "loss_unl", "loss_gen"} and all(torch.isfinite(v) for v in out.values())
    assert any(not torch.equal(a, b) for a, b in zip(before_d, d.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_g, g.parameters()))
    assert [p.requires_grad for p in d.parameters()] == flags  # D's flags restored after G's update


def test_supervised_step_leaves_generator_alone(tiny_config):
    d, g, opt_d, opt_g, batch = _setup(tiny_config.model)
    before_g = [p.detach().clone() for p in g.parameters()]
    out = supervised_step(d, opt_d, batch)
    assert set(out) == {"loss_sup"}
    assert all(torch.equal(a, b) for a, b in zip(before_g, g.parameters()))


def test_fixed_seed_gives_identical_steps(tiny_config):
    results = []
    for _ in range(2):
        d, g, opt_d, opt_g, batch = _setup(tiny_config.model, seed=5)
        steps = [ssgan_step(d, g, opt_d, opt_g, batch, StepOptions()) for _ in range(3)]
        results.append([{k: float(v) for k, v in step.items()} for step in steps])
    assert results[0] == results[1]


def test_conditional_generator_makes_the_asked_classes(tiny_config):
    cfg = dataclasses.replace(tiny_config.model, conditional_generator=True)
    d, g, opt_d, opt_g, batch = _setup(cfg)
    y = g.sample_classes(20)
    assert torch.bincount(y, minlength=10).tolist() == [2] * 10
    assert g(g.sample_latent(20), y).shape == (20, 1, 8, 8)
    with pytest.raises(ValueError, match="needs class labels"):
        g(g.sample_latent(2))
    out = ssgan_step(d, g, opt_d, opt_g, batch, StepOptions())
    assert torch.isfinite(out["loss_gen"])


def test_conv_architecture_runs_on_32x32():
    cfg = ModelConfig(arch="conv", latent_dim=16)
    d, g, opt_d, opt_g, batch = _setup(cfg, shape=(3, 32, 32), n=4)
    logits, features = d(batch.x_unlabeled)
    assert logits.shape == (4, 10) and features.shape == (4, 192)
    assert g(g.sample_latent(4)).shape == (4, 3, 32, 32)
    for _ in range(2):
        out = ssgan_step(d, g, opt_d, opt_g, batch, StepOptions())
    assert all(torch.isfinite(v) for v in out.values())
    with pytest.raises(ValueError, match="conv needs 32x32"):
        build_models(cfg, (1, 8, 8), 10)


@pytest.mark.parametrize("arch, shape", [("mlp", (1, 8, 8)), ("conv", (3, 32, 32))])
def test_data_dependent_init_normalises_preactivations(arch, shape):
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, d_hidden=(64, 32), input_noise=0.0, hidden_noise=0.0)
    d, g = build_models(cfg, shape, 10)
    x = torch.rand(64, *shape)
    data_dependent_init(d, x, scale=1.0)
    d.eval()  # no dropout/noise: the init batch must now give normalised logits
    logits, _ = d(x)
    if arch == "mlp":  # without dropout the init pass and this pass see the same activations
        torch.testing.assert_close(logits.mean(0), torch.zeros(10), atol=1e-4, rtol=0)
        torch.testing.assert_close(logits.std(0), torch.ones(10), atol=1e-3, rtol=0)
    z = g.sample_latent(64)
    data_dependent_init(g, z)
    out = g.net[:-1](z)  # the WN output layer's pre-sigmoid activations, per unit / channel
    dims = [i for i in range(out.dim()) if i != 1]
    torch.testing.assert_close(out.mean(dims), torch.zeros(out.shape[1]), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(dims), torch.ones(out.shape[1]), atol=1e-3, rtol=0)


def test_index_stream_visits_every_item_once_per_pass():
    stream = index_stream(10, 4, np.random.default_rng(0))
    first = np.concatenate([next(stream) for _ in range(5)])  # 20 indices = two passes
    assert sorted(first[:10]) == list(range(10)) and sorted(first[10:]) == list(range(10))


def test_hidden_gains_stay_at_their_init_and_the_output_gain_trains(tiny_config):
    d, g, opt_d, opt_g, batch = _setup(tiny_config.model)
    gains = {n: p.detach().clone() for n, p in d.named_parameters() if n.endswith("original0")}
    ssgan_step(d, g, opt_d, opt_g, batch, StepOptions())
    after = dict(d.named_parameters())
    changed = {n for n, before in gains.items() if not torch.equal(before, after[n])}
    assert changed == {"head.parametrizations.weight.original0"}


def test_ema_update_matches_averaged_model(tiny_config):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from ssgan.training.step import ema_update

    torch.manual_seed(0)
    d, _ = build_models(tiny_config.model, (1, 8, 8), 10)
    ours, torchs = (AveragedModel(d, multi_avg_fn=get_ema_multi_avg_fn(0.9)) for _ in range(2))
    for _ in range(3):  # the first update copies, the later ones average
        with torch.no_grad():
            for p in d.parameters():
                p.add_(torch.randn_like(p))
        ema_update(ours, d)
        torchs.update_parameters(d)
        for a, b in zip(ours.state_dict().values(), torchs.state_dict().values()):
            assert torch.equal(a, b)
    assert int(ours.n_averaged) == 3
