"""Rank-0 chores in one place: validation and model selection on it, G's optional probe,
checkpoints, progress lines.

It writes nothing outside its temp dir: metrics and checkpoints leave through the report, and the
driver side logs them to MLflow (workers may be other machines).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch import nn

from ssgan import metrics as M
from ssgan.training.checkpoint import DataMeta, model_payload, save_training_state
from ssgan.config import Config
from ssgan.data.parquet import Split


class GeneratorProbe(Protocol):
    """A score of G on the val images (ssgan.quality.probe.FidClassifierVal), reported under `name`."""
    name: str

    def __call__(self, g: nn.Module, val_images: np.ndarray) -> float: ...


class Rank0Reporter:
    """Validates at each epoch end, keeps the best-on-val model and the history, logs, checkpoints."""

    def __init__(self, config: Config, meta: DataMeta, val: Split, resumed: dict[str, Any] | None = None,
                 probe: GeneratorProbe | None = None) -> None:
        self.config, self.meta, self.val = config, meta, val
        self.history: list[dict[str, float]] = list(resumed["history"]) if resumed else []
        self.best: dict[str, Any] | None = resumed["best"] if resumed else None
        # A supervised run never trains G: a score of its random init would be logged as if it were one.
        self.probe = probe if config.quality.every_epochs > 0 and config.train.mode == "ssgan" else None

    def end_epoch(self, epoch: int, step: int, stats: dict[str, float], d: nn.Module, g: nn.Module,
                  training_state: dict[str, Any], labeler: nn.Module | None = None,
                  ) -> tuple[dict[str, float], tempfile.TemporaryDirectory | None]:
        """The epoch's metrics (with `epoch` and `step`) and, on checkpoint epochs, a temp dir holding the
        checkpoint (the caller reports, then cleans up). `labeler`: the network that makes the
        pseudo-labels, scored on val at train.pseudo_label_threshold."""
        preds = M.predict(d, self.val.images, device=next(d.parameters()).device)
        val_accuracy = M.accuracy(preds, self.val.labels)
        metrics = {**stats, M.VAL_ACCURACY: val_accuracy, M.VAL_ERROR: 1.0 - val_accuracy}
        if labeler is not None:
            probs = M.probabilities(labeler, self.val.images, device=next(labeler.parameters()).device)
            metrics.update(M.confident_label_stats(probs, self.val.labels, self.config.train.pseudo_label_threshold))
        tc, every = self.config.train, self.config.quality.every_epochs
        if self.probe is not None and (epoch % every == 0 or epoch == tc.epochs):
            metrics[self.probe.name] = self.probe(g, self.val.images)
        self.history.append({"epoch": epoch, "step": step, **metrics})
        if self.best is None or val_accuracy > self.best["val_accuracy"]:
            self.best = model_payload(self.config, self.meta, d, g, epoch, val_accuracy)
        tmp = None
        if epoch % tc.checkpoint_every == 0 or epoch == tc.epochs:
            tmp = tempfile.TemporaryDirectory(prefix="ssgan-ckpt-")
            save_training_state(Path(tmp.name), {**training_state, "epoch": epoch, "step": step,
                                                 "best": self.best, "history": self.history})
        shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if np.isfinite(v))
        print(f"[ssgan] epoch {epoch}/{tc.epochs} step {step} {shown}", flush=True)
        return {"epoch": epoch, "step": step, **metrics}, tmp
