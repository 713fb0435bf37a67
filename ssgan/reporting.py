"""Rank-0 chores in one place: validation, model selection, checkpoints, progress lines.

It writes nothing outside its temp dir: metrics and checkpoints leave through the report, and the
driver side logs them to MLflow (workers may be other machines).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ssgan import metrics as M
from ssgan import quality as Q
from ssgan.checkpoint import DataMeta, model_payload, save_training_state
from ssgan.config import Config
from ssgan.data.parquet import Split
from ssgan.models import generate_images


class Rank0Reporter:
    """Validates at each epoch end, keeps the best-on-val model and the history, logs, checkpoints."""

    def __init__(self, config: Config, meta: DataMeta, val: Split, resumed: dict[str, Any] | None = None,
                 reference: dict[str, Any] | None = None) -> None:
        self.config, self.meta, self.val = config, meta, val
        self.history: list[dict[str, float]] = list(resumed["history"]) if resumed else []
        self.best: dict[str, Any] | None = resumed["best"] if resumed else None
        self.reference = None
        if reference is not None and config.quality.every_epochs > 0:
            from ssgan.feature_nets import classifier_outputs, reference_from_payload

            self.reference = reference_from_payload(reference)
            self.val_features = classifier_outputs(self.reference, val.images)[0]

    def fid_classifier(self, g: nn.Module) -> float:
        """G's samples against val in the reference classifier's features; the same latents every time,
        so epochs compare like with like."""
        from ssgan.feature_nets import classifier_outputs

        images = generate_images(g, self.config.quality.train_samples, seed=self.config.train.seed)
        return Q.fid(classifier_outputs(self.reference, images)[0], self.val_features)

    def end_epoch(self, epoch: int, step: int, stats: dict[str, float], d: nn.Module, g: nn.Module,
                  training_state: dict[str, Any]) -> tuple[dict[str, float], tempfile.TemporaryDirectory | None]:
        """The epoch's metrics (with `epoch` and `step`) and, on checkpoint epochs, a temp dir holding the
        checkpoint (the caller reports, then cleans up)."""
        preds = M.predict(d, self.val.images, device=next(d.parameters()).device)
        val_accuracy = M.accuracy(preds, self.val.labels)
        metrics = {**stats, M.VAL_ACCURACY: val_accuracy, M.VAL_ERROR: 1.0 - val_accuracy}
        tc, every = self.config.train, self.config.quality.every_epochs
        if self.reference is not None and (epoch % every == 0 or epoch == tc.epochs):
            metrics[Q.FID_CLASSIFIER_VAL] = self.fid_classifier(g)
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
