"""Metric names (one name everywhere: code, MLflow, metrics.json, DVC plots, README) and classifier metrics."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

# Per-epoch training metrics, reported through Ray Train and logged to MLflow with step=epoch.
LOSS_SUP = "loss_sup"
LOSS_UNL = "loss_unl"
LOSS_GEN = "loss_gen"
# D's optional unlabeled-data terms (ssgan.training.unlabeled_terms), reported only when their weight is > 0.
LOSS_CONS = "loss_cons"
LOSS_VAT = "loss_vat"
LOSS_ENT = "loss_ent"
LOSS_PSEUDO = "loss_pseudo"  # cross-entropy to confident pseudo-labels, over the whole unlabeled batch
# Share of the unlabeled batch whose pseudo-label reaches train.pseudo_label_threshold (mean over the epoch).
PSEUDO_LABEL_SHARE = "pseudo_label_share"
# The same on the val images (the target network, clean), and how often those confident labels are right.
PSEUDO_LABEL_SHARE_VAL = "pseudo_label_share_val"
PSEUDO_LABEL_ACCURACY_VAL = "pseudo_label_accuracy_val"
# Share of steps that took the second G step of train.second_g_step_above.
SECOND_G_STEP_SHARE = "second_g_step_share"
VAL_ACCURACY = "val_accuracy"
VAL_ERROR = "val_error"
# Final metrics of the model selected on val, written by the evaluate stage.
TEST_ACCURACY = "test_accuracy"
TEST_ERROR = "test_error"
BEST_EPOCH = "best_epoch"
# Per-class test accuracy: a column of plots/test_accuracy_class.csv, and in MLflow one metric per class.
TEST_ACCURACY_CLASS = "test_accuracy_class"


def test_accuracy_class(index: int) -> str:
    """Per-class test accuracy, keyed by class index (class names may hold characters MLflow refuses)."""
    return f"{TEST_ACCURACY_CLASS}_{index}"


EPOCH_METRICS = (LOSS_SUP, LOSS_UNL, LOSS_GEN, LOSS_CONS, LOSS_VAT, LOSS_ENT, LOSS_PSEUDO, PSEUDO_LABEL_SHARE,
                 PSEUDO_LABEL_SHARE_VAL, PSEUDO_LABEL_ACCURACY_VAL, SECOND_G_STEP_SHARE, VAL_ACCURACY, VAL_ERROR)  # those reported


def to_device(array: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    tensor, device = torch.from_numpy(array), torch.device(device)
    if device.type == "cuda":
        # A copy from pageable memory waits for the GPU to drain; from pinned memory it is queued.
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [0, 1], converted on the device."""
    return to_device(images, device).permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def predict(classifier: nn.Module, images: np.ndarray, batch_size: int = 1000, device: torch.device | str = "cpu") -> np.ndarray:
    """Class predictions in eval mode (no noise); restores the module's previous mode."""
    was_training = classifier.training
    classifier.eval()
    preds = []
    for start in range(0, len(images), batch_size):
        logits, _ = classifier(to_tensor(images[start:start + batch_size], device))
        preds.append(logits.argmax(dim=1).cpu().numpy())
    classifier.train(was_training)
    return np.concatenate(preds) if preds else np.empty(0, np.int64)


@torch.no_grad()
def probabilities(classifier: nn.Module, images: np.ndarray, batch_size: int = 1000,
                  device: torch.device | str = "cpu") -> np.ndarray:
    """Class probabilities (N, K) in eval mode (no noise); restores the module's previous mode."""
    was_training = classifier.training
    classifier.eval()
    out = []
    for start in range(0, len(images), batch_size):
        logits, _ = classifier(to_tensor(images[start:start + batch_size], device))
        out.append(torch.softmax(logits, dim=1).cpu().numpy())
    classifier.train(was_training)
    return np.concatenate(out)


def confident_label_stats(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """The share of images whose top class probability is >= threshold and, when there are any, how
    often that class is the true one (what pseudo-labels at this threshold would be worth)."""
    confident = probs.max(axis=1) >= threshold
    stats = {PSEUDO_LABEL_SHARE_VAL: float(confident.mean())}
    if confident.any():
        stats[PSEUDO_LABEL_ACCURACY_VAL] = float((probs[confident].argmax(axis=1) == labels[confident]).mean())
    return stats


def accuracy(preds: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float(np.mean(preds == labels))


def confusion_matrix(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    return np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(counts: np.ndarray) -> np.ndarray:
    """Recall of each true class from a confusion matrix; NaN for a class absent from the labels."""
    totals = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(counts) / totals, np.nan)
