"""Using a trained model without writing Python: load a classifier or a generator from models/model.pt or
MLflow (models:/name@alias, models:/name/version, runs:/id/classifier). The images to score are read by
`ssgan.data.inputs`.

MLflow models load through `mlflow.pytorch.load_model`, so the signature and the code logged with
them are what runs; their input size comes from that signature, their class names from the run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ssgan.data.catalog import DataSourceError

class Classifier(nn.Module):
    """The served classifier: images as `prepare` stores them (uint8, N x H x W x C) -> K class logits.

    It scales to [0, 1] itself, so a user passes the Parquet splits' pixels (or a decoded PNG)
    unchanged, and the uint8 signature refuses floats that would otherwise be scored silently wrong.
    """

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return self.discriminator(x)[0]


class GeneratorFromInput(nn.Module):
    """G with one input tensor: uniform noise, followed for a conditional G by a one-hot class."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator.net(z).view(-1, *self.generator.image_shape)


MLFLOW_SCHEMES = ("runs:/", "models:/")


@dataclass
class LoadedClassifier:
    logits: Callable[[np.ndarray], np.ndarray]  # uint8 (N, H, W, C) -> (N, K) class logits of D
    image_shape: tuple[int, int, int]  # (H, W, C)
    class_names: list[str]

    def probabilities(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        out = [torch.softmax(torch.from_numpy(self.logits(images[s:s + batch_size])), dim=1).numpy()
               for s in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.empty((0, len(self.class_names)))


@dataclass
class LoadedGenerator:
    sample: Callable[[int, int | None, int], np.ndarray]  # (n, class or None, seed) -> uint8 (N, H, W, C)
    num_classes: int  # 0 for an unconditional G


def _mlflow_info(uri: str):
    import mlflow

    try:
        info = mlflow.models.get_model_info(uri)
    except Exception as err:  # MLflow raises several types for a missing model or alias
        raise DataSourceError(f"{uri}: no such MLflow model ({str(err).splitlines()[0][:200]})") from None
    return info, mlflow.get_run(info.run_id).data


def load_classifier(spec: str) -> LoadedClassifier:
    if spec.startswith(MLFLOW_SCHEMES):
        import mlflow.pytorch

        info, run = _mlflow_info(spec)
        shape = tuple(int(d) for d in info.signature.inputs.inputs[0].shape[1:])
        net = mlflow.pytorch.load_model(spec)
        names = json.loads(run.tags.get("ssgan.class_names", "null") or "null")

        def logits(images: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return net(torch.from_numpy(images)).numpy()

        k = None if names else logits(np.zeros((1, *shape), np.uint8)).shape[1]
        return LoadedClassifier(logits, shape, names or [str(i) for i in range(k)])
    model = _load_file(spec)
    net = Classifier(model.discriminator).eval()
    c, h, w = model.meta.image_shape

    def logits(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(images)).numpy()

    return LoadedClassifier(logits, (h, w, c), list(model.meta.class_names))


def load_generator(spec: str) -> LoadedGenerator:
    if spec.startswith(MLFLOW_SCHEMES):
        import mlflow.pytorch

        info, run = _mlflow_info(spec)
        if info.metadata and "latent_dim" in info.metadata:  # logged since the input layout travels with the model
            latent, classes = int(info.metadata["latent_dim"]), int(info.metadata["num_classes"])
        else:
            latent = 100 if run.params.get("model.arch") == "seed_mlp" else int(run.params["model.latent_dim"])
            classes = int(info.signature.inputs.inputs[0].shape[-1]) - latent
        net = mlflow.pytorch.load_model(spec)

        def sample(n: int, label: int | None, seed: int) -> np.ndarray:
            from ssgan.util.images import to_uint8
            from ssgan.training.models import latent_batches

            out = []
            with torch.no_grad():
                for z, y in latent_batches(latent, classes, n, seed, label=label):
                    out.append(net(z if y is None else torch.cat([z, torch.eye(classes)[y]], dim=1)).numpy())
            return to_uint8(np.concatenate(out))

        return LoadedGenerator(sample, classes)
    from ssgan.training.models import generate_images

    g = _load_file(spec).generator

    def sample(n: int, label: int | None, seed: int) -> np.ndarray:
        return generate_images(g, n, seed, label=label)

    return LoadedGenerator(sample, g.num_classes)


def _load_file(spec: str):
    from ssgan.training.checkpoint import load_model

    if not Path(spec).exists():
        raise DataSourceError(f"{spec}: not found; give a model file (models/model.pt) or an MLflow model URI "
                              f"(models:/ssgan-digits-classifier@champion, runs:/<run id>/classifier)")
    return load_model(Path(spec))
