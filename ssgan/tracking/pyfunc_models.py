"""The MLflow pyfunc models ssgan logs, for `mlflow.pyfunc.load_model` and `mlflow models serve`.

Each logged model holds the project's weights-only payload (the dict models/model.pt holds: state
dicts and the config as plain data) as the artifact `ssgan_model.pt`; `load_context` reads it with
`torch.load(weights_only=True)`. The classes are logged as "models from code" (`CODE`, a file that
names one of them), so no pickled Python object is stored: loading a version imports this module
from the installed ssgan and runs that file (docs/registry.md says what that asks a user to trust).
ssgan's own commands never load these; `ssgan.tracking.serving` reads the payload alone.
"""
from __future__ import annotations

import numpy as np
import torch
from mlflow.pyfunc import PythonModel

from ssgan.tracking.serving import Classifier

PAYLOAD_KEY = "ssgan_model"  # the pyfunc artifact name of the payload
BATCH = 1000  # images per forward pass: a big request must not hold every activation at once

# The file MLflow logs as each model's code ("models from code"): it only names the class.
CODE = '''"""ssgan {kind} (models from code): the class comes from the installed ssgan package."""
from mlflow.models import set_model

from ssgan.tracking.pyfunc_models import {cls}

set_model({cls}())
'''


def _model(context):
    from ssgan.training.checkpoint import model_from_payload

    return model_from_payload(torch.load(context.artifacts[PAYLOAD_KEY], map_location="cpu", weights_only=True))


class ServedClassifier(PythonModel):
    """uint8 images (N, H, W, C), as `prepare` stores them -> per image the predicted class name, its
    probability, and every class's probability (softmax of D's K logits, in class_names.json order)."""

    def load_context(self, context) -> None:
        model = _model(context)
        self.net = Classifier(model.discriminator).eval()
        self.class_names = list(model.meta.class_names)

    def predict(self, context, model_input: np.ndarray, params=None):
        import pandas as pd

        images = np.ascontiguousarray(model_input)
        with torch.no_grad():
            chunks = [torch.softmax(self.net(torch.from_numpy(images[s:s + BATCH])), dim=1).numpy()
                      for s in range(0, len(images), BATCH)]
        probs = np.concatenate(chunks) if chunks else np.empty((0, len(self.class_names)), np.float32)
        best = probs.argmax(axis=1)
        return pd.DataFrame({"class": [self.class_names[i] for i in best],
                             "probability": probs[np.arange(len(probs)), best].astype(np.float64),
                             "probabilities": [row.astype(np.float64) for row in probs]})


class ServedGenerator(PythonModel):
    """G's input, float32 (N, latent_dim + num_classes): uniform noise in [0, 1), followed for a
    conditional G by a one-hot class -> uint8 images (N, H, W, C). metadata has latent_dim and num_classes."""

    def load_context(self, context) -> None:
        self.generator = _model(context).generator.eval()

    def predict(self, context, model_input: np.ndarray, params=None):
        from ssgan.util.images import to_uint8

        z = torch.from_numpy(np.ascontiguousarray(model_input, dtype=np.float32))
        g = self.generator
        with torch.no_grad():
            out = [g.net(z[s:s + BATCH]).view(-1, *g.image_shape).numpy() for s in range(0, len(z), BATCH)]
        return to_uint8(np.concatenate(out)) if out else np.empty((0, *g.image_shape[1:], g.image_shape[0]), np.uint8)
