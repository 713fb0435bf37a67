"""Networks: the K-logit discriminator (also the classifier) and the generator.

`arch: mlp` follows the paper's MNIST model: Gaussian noise on D's input and after each hidden
layer, weight-normalised linear layers; G maps uniform noise through softplus + batch norm
layers to a sigmoid image.
"""
from __future__ import annotations

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


class Discriminator(nn.Module):
    """Returns (K class logits, features of the last hidden layer) for images in [0, 1]."""

    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        width = image_shape[0] * image_shape[1] * image_shape[2]
        layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(cfg.input_noise)]
        for h in cfg.d_hidden:
            layers += [weight_norm(nn.Linear(width, h)), nn.ReLU(), GaussianNoise(cfg.hidden_noise)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = weight_norm(nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.head(features), features


class Generator(nn.Module):
    """Uniform noise -> image in [0, 1] with the prepared data's (C, H, W) shape."""

    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.latent_dim = cfg.latent_dim
        self.image_shape = image_shape
        layers: list[nn.Module] = []
        width = cfg.latent_dim
        for h in cfg.g_hidden:
            layers += [nn.Linear(width, h, bias=False), nn.BatchNorm1d(h), nn.Softplus()]
            width = h
        out = image_shape[0] * image_shape[1] * image_shape[2]
        layers += [weight_norm(nn.Linear(width, out)), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def sample_latent(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.rand(n, self.latent_dim, generator=generator, device=device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.image_shape)


def build_models(cfg: ModelConfig, image_shape: tuple[int, int, int], num_classes: int) -> tuple[Discriminator, Generator]:
    """`image_shape` is (C, H, W)."""
    if cfg.arch != "mlp":
        raise ValueError(f"model.arch: unknown architecture {cfg.arch!r}; available: mlp")
    return Discriminator(cfg, image_shape, num_classes), Generator(cfg, image_shape)
