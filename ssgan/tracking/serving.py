"""Using a trained model without writing Python: load a classifier or a generator from models/model.pt or
MLflow (models:/name@alias, models:/name/version, runs:/id/classifier). The images to score are read by
`ssgan.data.inputs`.

An MLflow model is read the way models/model.pt is: its weights-only payload (`ssgan_model.pt`,
`torch.load(weights_only=True)`) is downloaded and nothing else of the version is used; so its input
size and class names (any number) come from the payload, and no code of the registry ever runs.
"""
from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ssgan.data.catalog import DataSourceError
from ssgan.training.checkpoint import ModelFileError


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


MLFLOW_SCHEMES = ("runs:/", "models:/")
# What a model ssgan logs to MLflow holds (ssgan.tracking.pyfunc_models): the weights-only payload
# at artifacts/PAYLOAD, the class names as JSON, and metadata["ssgan_format"] == FORMAT.
PAYLOAD = "ssgan_model.pt"
CLASS_NAMES = "class_names.json"  # in the order of the served `probabilities`
FORMAT = 1


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


def _mlflow_model(uri: str, kind: str):
    """The ssgan model an MLflow URI names, read from two files of it alone, MLmodel (YAML) and the
    weights-only payload: nothing in the version is imported or unpickled. A version without that
    payload (logged by an older ssgan, or not by ssgan) is refused; so is one whose payload torch
    cannot read weights-only."""
    from mlflow.models import Model
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from ssgan.training.checkpoint import model_from_payload

    refused = ModelFileError(f"{uri}: not an ssgan weights-only model (no artifacts/{PAYLOAD}: logged by an older "
                             f"ssgan or by another tool), and ssgan never unpickles registry content; register it "
                             f"again with this ssgan (`ssgan train`, `dvc repro`), or pass the model file (models/model.pt)")
    with tempfile.TemporaryDirectory(prefix="ssgan-model-") as tmp:
        try:  # one repository: an alias is resolved once, so both files come from one version
            repo = get_artifact_repository(uri)
            mlmodel = Path(repo.download_artifacts("MLmodel", tmp))
        except Exception as err:  # MLflow raises several types for a missing model, version or alias
            raise DataSourceError(f"{uri}: no such MLflow model ({str(err).splitlines()[0][:200]})") from None
        try:
            metadata = Model.load(str(mlmodel)).metadata or {}
        except Exception:  # not an MLmodel file ssgan can read (Model.load parses YAML safely)
            raise refused from None
        if metadata.get("ssgan_format") != FORMAT:
            raise refused
        if metadata.get("ssgan_kind") != kind:
            raise DataSourceError(f"{uri}: an ssgan {metadata.get('ssgan_kind')} model, not a {kind}; give the "
                                  f"ssgan-<source>-{kind} model")
        try:
            payload = Path(repo.download_artifacts(f"artifacts/{PAYLOAD}", tmp))
        except Exception:
            raise refused from None
        try:
            with warnings.catch_warnings():  # torch warns on a foreign pickle protocol before refusing it
                warnings.simplefilter("ignore", UserWarning)
                state = torch.load(payload, map_location="cpu", weights_only=True)
            return model_from_payload(state)
        except Exception as err:  # a pickle with code in it, a damaged file, or a dict of the wrong layout
            raise ModelFileError(f"{uri}: artifacts/{PAYLOAD} is not a weights-only ssgan payload ({type(err).__name__}), "
                                 f"so nothing in it was run; register the model again with this ssgan, and check who can "
                                 f"write to this registry (docs/registry.md)") from None


def load_classifier(spec: str) -> LoadedClassifier:
    model = _mlflow_model(spec, "classifier") if spec.startswith(MLFLOW_SCHEMES) else _load_file(spec)
    net = Classifier(model.discriminator).eval()
    c, h, w = model.meta.image_shape

    def logits(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(images)).numpy()

    return LoadedClassifier(logits, (h, w, c), list(model.meta.class_names))


def load_generator(spec: str) -> LoadedGenerator:
    from ssgan.training.models import generate_images

    g = (_mlflow_model(spec, "generator") if spec.startswith(MLFLOW_SCHEMES) else _load_file(spec)).generator

    def sample(n: int, label: int | None, seed: int) -> np.ndarray:
        return generate_images(g, n, seed, label=label)

    return LoadedGenerator(sample, g.num_classes)


def _load_file(spec: str):
    from ssgan.training.checkpoint import load_model

    if not Path(spec).exists():
        raise DataSourceError(f"{spec}: not found; give a model file (models/model.pt) or an MLflow model URI "
                              f"(models:/ssgan-digits-classifier@champion, runs:/<run id>/classifier)")
    return load_model(Path(spec))
