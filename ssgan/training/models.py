"""Networks of Salimans et al. 2016 (openai/improved-gan): the K-logit discriminator (also the
classifier) and the generator, as an MLP (28x28 and smaller) or a conv net (32x32x3).

D returns (K class logits, features); the features (last hidden layer / global pool) are what
feature matching compares. Images are in [0, 1], shaped (N, C, H, W).

The MLP's features include the Gaussian noise that follows the last hidden layer; the paper's code
matches the layer before that noise. We measured both (docs/results.md, "Variants tried") and kept the one with the
lower val error on digits and Fashion-MNIST.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ssgan.config import ModelConfig


class GaussianNoise(nn.Module):
    """Additive N(0, sigma^2) noise in training mode only (a regulariser of D)."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.sigma > 0:
            return x + self.sigma * torch.randn_like(x)
        return x


def _wn(layer: nn.Module) -> nn.Module:
    # Normalise per output unit: a transposed conv keeps its output channels in dim 1.
    return weight_norm(layer, dim=1 if isinstance(layer, nn.ConvTranspose2d) else 0)


def mlp_discriminator(cfg: ModelConfig, width: int) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(cfg.input_noise)]
    for h in cfg.d_hidden:
        layers += [_wn(nn.Linear(width, h)), nn.ReLU(), GaussianNoise(cfg.hidden_noise)]
        width = h
    return nn.Sequential(*layers), width


# model.arch seed_mlp: the seed article's network, as a preset (its widths are fixed; d_hidden,
# g_hidden and latent_dim are not used). D: image -> 128 -> 128 -> K logits (the K+1 D); G: 100-d
# noise -> 128 ReLU + batch norm -> 128 ReLU + batch norm -> image with a sigmoid.
SEED_WIDTH, SEED_LATENT = 128, 100


def seed_discriminator(cfg: ModelConfig, width: int) -> tuple[nn.Sequential, int]:
    """No weight norm; model.input_noise / hidden_noise still apply (set them to 0 for the plain net)."""
    layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(cfg.input_noise)]
    for _ in range(2):
        layers += [nn.Linear(width, SEED_WIDTH), nn.ReLU(), GaussianNoise(cfg.hidden_noise)]
        width = SEED_WIDTH
    return nn.Sequential(*layers), width


def conv_discriminator(channels: int) -> tuple[nn.Sequential, int]:
    """The paper's 9-layer CIFAR-10 D: dropout, 96/192-channel 3x3 convs, leaky ReLU, global pooling."""
    def conv(cin: int, cout: int, k: int, stride: int = 1, pad: int = 1) -> list[nn.Module]:
        return [_wn(nn.Conv2d(cin, cout, k, stride, pad)), nn.LeakyReLU(0.2)]

    layers: list[nn.Module] = [nn.Dropout(0.2)]
    layers += conv(channels, 96, 3) + conv(96, 96, 3) + conv(96, 96, 3, stride=2) + [nn.Dropout(0.5)]
    layers += conv(96, 192, 3) + conv(192, 192, 3) + conv(192, 192, 3, stride=2) + [nn.Dropout(0.5)]
    layers += conv(192, 192, 3, pad=0) + conv(192, 192, 1, pad=0) + conv(192, 192, 1, pad=0)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), 192


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        c, h, w = image_shape
        if cfg.arch == "seed_mlp":
            self.body, width = seed_discriminator(cfg, c * h * w)
            self.head = nn.Linear(width, num_classes)
        else:
            self.body, width = mlp_discriminator(cfg, c * h * w) if cfg.arch == "mlp" else conv_discriminator(c)
            self.head = _wn(nn.Linear(width, num_classes))
        # As in openai/improved-gan, hidden layers keep the gain that data-dependent init gave them
        # (only directions and biases train): D cannot scale its activations up to drown out the
        # Gaussian noise that regularises it. The output layer's gain trains.
        for module in self.body.modules():
            if hasattr(module, "parametrizations"):
                module.parametrizations.weight.original0.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.head(features), features


class Generator(nn.Module):
    """Uniform noise (plus a one-hot class when conditional) -> image in [0, 1]."""

    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.latent_dim = SEED_LATENT if cfg.arch == "seed_mlp" else cfg.latent_dim
        self.image_shape = image_shape
        self.num_classes = num_classes if cfg.conditional_generator else 0
        c, h, w = image_shape
        width = self.latent_dim + self.num_classes
        if cfg.arch == "seed_mlp":
            layers = []
            for _ in range(2):
                layers += [nn.Linear(width, SEED_WIDTH), nn.ReLU(), nn.BatchNorm1d(SEED_WIDTH)]
                width = SEED_WIDTH
            layers += [nn.Linear(width, c * h * w), nn.Sigmoid()]
        elif cfg.arch == "mlp":
            layers: list[nn.Module] = []
            for hidden in cfg.g_hidden:
                layers += [nn.Linear(width, hidden, bias=False), nn.BatchNorm1d(hidden), nn.Softplus()]
                width = hidden
            layers += [_wn(nn.Linear(width, c * h * w)), nn.Sigmoid()]
        else:
            # The paper's CIFAR-10 G: 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32xC, batch norm, WN output.
            def up(cin: int, cout: int) -> list[nn.Module]:
                return [nn.ConvTranspose2d(cin, cout, 5, 2, 2, output_padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

            layers = [nn.Linear(width, 4 * 4 * 512, bias=False), nn.BatchNorm1d(4 * 4 * 512), nn.ReLU(),
                      nn.Unflatten(1, (512, 4, 4)), *up(512, 256), *up(256, 128),
                      _wn(nn.ConvTranspose2d(128, c, 5, 2, 2, output_padding=1)), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def sample_latent(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.rand(n, self.latent_dim, generator=generator, device=device)

    def sample_classes(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor | None:
        """Balanced class labels for a conditional G (None for an unconditional one)."""
        if not self.num_classes:
            return None
        return (torch.arange(n, device=device) + torch.randint(self.num_classes, (1,), generator=generator).item()) % self.num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if y is None:
                raise ValueError("a conditional generator needs class labels y")
            z = torch.cat([z, nn.functional.one_hot(y, self.num_classes).to(z.dtype)], dim=1)
        return self.net(z).view(-1, *self.image_shape)


def build_models(cfg: ModelConfig, image_shape: tuple[int, int, int], num_classes: int) -> tuple[Discriminator, Generator]:
    """`image_shape` is (C, H, W); conv needs 32x32 images."""
    if cfg.arch == "conv" and image_shape[1:] != (32, 32):
        raise ValueError(f"model.arch: conv needs 32x32 images, got {image_shape[1]}x{image_shape[2]}; use arch: mlp")
    return Discriminator(cfg, image_shape, num_classes), Generator(cfg, image_shape, num_classes)


@torch.no_grad()
def data_dependent_init(model: nn.Module, *inputs: torch.Tensor, scale: float = 1.0) -> None:
    """Salimans & Kingma 2016: set each weight-normalised layer's gain g and bias b so that, on
    this batch, its pre-activations have zero mean and standard deviation `scale` per unit.

    Layers are initialised in forward order: each hook rescales its own output, so later layers
    see already-normalised inputs.
    """
    def hook(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
        dims = [d for d in range(output.dim()) if d != 1]
        mean, std = output.mean(dim=dims), output.std(dim=dims) + 1e-8
        shape = [1, -1] + [1] * (output.dim() - 2)
        g = module.parametrizations.weight.original0
        # ConvTranspose weights are (in, out, ...): their gain runs along dim 1.
        gain_shape = [1, -1] + [1] * (g.dim() - 2) if isinstance(module, nn.ConvTranspose2d) else [-1] + [1] * (g.dim() - 1)
        new_gain = scale / std
        g.mul_(new_gain.view(gain_shape))
        if module.bias is not None:
            module.bias.copy_((module.bias - mean) * new_gain)
        return (output - mean.view(shape)) * new_gain.view(shape)

    handles = [m.register_forward_hook(hook) for m in model.modules() if hasattr(m, "parametrizations") and "weight" in m.parametrizations]
    was_training = model.training
    model.train()
    try:
        model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def latent_batches(latent_dim: int, num_classes: int, n: int, seed: int, batch_size: int = 500,
                   label: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """G's inputs for `n` seeded samples, in batches: uniform noise and, for a conditional G, classes
    (cycled from a seeded offset, or all `label`). Drawn on the CPU, so one seed gives the same latents
    on any device, and for a model file and its MLflow copy alike (both sample through here)."""
    rng = torch.Generator().manual_seed(seed)
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        z = torch.rand(m, latent_dim, generator=rng)
        if not num_classes:
            y = None
        elif label is None:
            y = (torch.arange(m) + torch.randint(num_classes, (1,), generator=rng).item()) % num_classes
        else:
            y = torch.full((m,), label)
        yield z, y


@torch.no_grad()
def generate_images(g: Generator, n: int, seed: int, batch_size: int = 500, label: int | None = None) -> np.ndarray:
    """`n` samples of G in eval mode as uint8 (N, H, W, C), from `latent_batches(seed)`."""
    from ssgan.util.images import to_uint8

    device = next(g.parameters()).device
    was_training = g.training
    g.eval()
    out = []
    try:
        for z, y in latent_batches(g.latent_dim, g.num_classes, n, seed, batch_size, label):
            out.append(g(z.to(device), None if y is None else y.to(device)).float().cpu().numpy())
    finally:
        g.train(was_training)
    return to_uint8(np.concatenate(out))
