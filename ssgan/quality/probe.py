"""G's score during training, computed by rank 0 at the epochs `quality.every_epochs` names.

The driver builds the probe and puts it in the `TrainJob`; the training loop calls it without
knowing what it measures, so `ssgan.training` needs nothing from this package.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from ssgan.quality import measures as Q
from ssgan.quality.feature_nets import classifier_outputs, reference_from_payload
from ssgan.training.models import generate_images


class FidClassifierVal:
    """fid_classifier_val: `samples` images of G against the val split, in the reference classifier's
    features; the same latents (`seed`) every time, so epochs compare like with like."""
    name = Q.FID_CLASSIFIER_VAL

    def __init__(self, reference: dict[str, Any], samples: int, seed: int) -> None:
        self.reference, self.samples, self.seed = reference, samples, seed  # the payload travels to the worker
        self._net = self._val_features = None

    def __call__(self, g: nn.Module, val_images: np.ndarray) -> float:
        if self._net is None:  # built on the worker, once per run
            self._net = reference_from_payload(self.reference)
            self._val_features = classifier_outputs(self._net, val_images)[0]
        images = generate_images(g, self.samples, seed=self.seed)
        return Q.fid(classifier_outputs(self._net, images)[0], self._val_features)

    def __getstate__(self) -> dict[str, Any]:  # what travels: the payload, not the built network
        return {"reference": self.reference, "samples": self.samples, "seed": self.seed}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)
