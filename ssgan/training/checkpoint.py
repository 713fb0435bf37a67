"""Checkpoints: state_dicts plus the config as plain data, never pickled objects.

Two kinds: the *training state* Ray Train carries between epochs (models, optimizers, history,
and the best-on-val model so far), and the *model file* the train stage leaves under models/.
Both load with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ssgan.config import Config, from_dict, to_dict
from ssgan.util.fileio import atomic_write
from ssgan.training.models import Discriminator, Generator, build_models

STATE_FILE = "state.pt"


class ModelFileError(RuntimeError):
    """A model file is missing or unreadable."""


@dataclass(frozen=True)
class DataMeta:
    """What the models must know about the prepared data."""
    image_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    class_names: tuple[str, ...]
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"image_shape": list(self.image_shape), "num_classes": self.num_classes,
                "class_names": list(self.class_names), "source": self.source}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataMeta":
        return cls(tuple(d["image_shape"]), int(d["num_classes"]), tuple(d["class_names"]), d["source"])


def payload_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, payload_bytes(obj))


def model_payload(config: Config, meta: DataMeta, d: torch.nn.Module, g: torch.nn.Module,
                  epoch: int, val_accuracy: float) -> dict[str, Any]:
    """The selected model: D (the classifier) and G weights, the config, and when/why it was selected."""
    return {"config": to_dict(config), "data": meta.to_dict(), "epoch": epoch, "val_accuracy": val_accuracy,
            "discriminator": {k: v.detach().cpu().clone() for k, v in d.state_dict().items()},
            "generator": {k: v.detach().cpu().clone() for k, v in g.state_dict().items()}}


@dataclass
class LoadedModel:
    config: Config
    meta: DataMeta
    discriminator: Discriminator
    generator: Generator
    epoch: int
    val_accuracy: float


def load_payload(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: model file not found; run `dvc repro train` first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a damaged file
        raise ModelFileError(f"{path}: not a readable ssgan model file ({type(err).__name__}); rerun `dvc repro train`") from None


def model_from_payload(payload: dict[str, Any]) -> LoadedModel:
    config, meta = from_dict(payload["config"]), DataMeta.from_dict(payload["data"])
    d, g = build_models(config.model, meta.image_shape, meta.num_classes)
    d.load_state_dict(payload["discriminator"])
    g.load_state_dict(payload["generator"])
    d.eval()
    g.eval()
    return LoadedModel(config, meta, d, g, int(payload["epoch"]), float(payload["val_accuracy"]))


def load_model(path: Path) -> LoadedModel:
    return model_from_payload(load_payload(path))


def save_training_state(directory: Path, state: dict[str, Any]) -> None:
    atomic_save(state, Path(directory) / STATE_FILE)


def load_training_state(directory: Path) -> dict[str, Any]:
    return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
