"""Logged and registered models: the classifier (and a trained G) as MLflow pyfunc models of a run,
one registry version per model file (by its md5), and the aliases and tags promotion sets.

What a logged model holds is `ssgan.tracking.pyfunc_models`' layout: the weights-only payload, the
class names as JSON, and a code file naming the pyfunc class; nothing in it is a pickled object.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ssgan.tracking.runs import MODEL_MD5_TAG, RunRef, mlflow_client, using_tracking_uri
from ssgan.tracking.serving import CLASS_NAMES, FORMAT, PAYLOAD
from ssgan.training.checkpoint import LoadedModel, model_payload, payload_bytes


def _signatures(model: LoadedModel):
    """What each served model takes and answers: the REST schema of `mlflow models serve` (docs/registry.md)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema, TensorSpec

    c, h, w = model.meta.image_shape
    g = model.generator
    images = TensorSpec(np.dtype(np.uint8), (-1, h, w, c))
    classes = Schema([ColSpec("string", "class"), ColSpec("double", "probability"),
                      ColSpec(Array("double"), "probabilities")])
    latent = TensorSpec(np.dtype(np.float32), (-1, g.latent_dim + g.num_classes))
    return {"classifier": ModelSignature(Schema([images]), classes),
            "generator": ModelSignature(Schema([latent]), Schema([images]))}


def log_models(ref: RunRef, model: LoadedModel, pip_requirements: list[str], generator: bool = True) -> dict[str, str]:
    """Log the classifier (D) and, unless `generator` is false (a supervised run never trains G), the
    generator as MLflow pyfunc models ("models from code", each holding the weights-only payload);
    returns their model URIs by name ("classifier", "generator")."""
    import mlflow
    import mlflow.pyfunc
    from mlflow.models import Model

    from ssgan.tracking import pyfunc_models as served

    c, h, w = model.meta.image_shape
    g = model.generator.eval()
    latent = g.sample_latent(2, generator=torch.Generator().manual_seed(0))
    if g.num_classes:
        latent = torch.cat([latent, torch.eye(g.num_classes)[:2]], dim=1)
    names = list(model.meta.class_names)
    signatures = _signatures(model)
    # By run_id, not inside `with mlflow.start_run(...)`: leaving that block marks the run FINISHED
    # while the driver still owes it the md5 tag, lineage and registration.
    experiment_id = mlflow_client(ref.tracking_uri).get_run(ref.run_id).info.experiment_id
    kinds = {"classifier": ("ServedClassifier", np.zeros((2, h, w, c), np.uint8),
                            {"num_classes": len(names), "image_shape": [h, w, c]}),
             "generator": ("ServedGenerator", latent.numpy(),
                           # the input's layout, so a caller builds the latents as generate_images does
                           {"latent_dim": g.latent_dim, "num_classes": g.num_classes, "image_shape": [h, w, c]})}
    uris = {}
    with tempfile.TemporaryDirectory() as tmp, using_tracking_uri(ref.tracking_uri):
        payload = Path(tmp) / PAYLOAD
        payload.write_bytes(payload_bytes(model_payload(model.config, model.meta, model.discriminator, g,
                                                        model.epoch, model.val_accuracy)))
        class_names = Path(tmp) / CLASS_NAMES
        class_names.write_text(json.dumps(names))
        for kind in ("classifier", "generator") if generator else ("classifier",):
            cls, example, metadata = kinds[kind]
            code = Path(tmp) / f"ssgan_{kind}.py"
            code.write_text(served.CODE.format(kind=kind, cls=cls))
            artifacts = {served.PAYLOAD_KEY: str(payload), **({"class_names": str(class_names)} if kind == "classifier" else {})}
            model_id = mlflow.initialize_logged_model(name=kind, source_run_id=ref.run_id,  # in the run's experiment
                                                      experiment_id=experiment_id).model_id
            uris[kind] = Model.log(None,
                name=kind, flavor=mlflow.pyfunc, python_model=str(code), artifacts=artifacts,
                signature=signatures[kind], input_example=example, pip_requirements=pip_requirements,
                metadata={"ssgan_format": FORMAT, "ssgan_kind": kind, **metadata},
                run_id=ref.run_id, model_id=model_id, flavor_name="pyfunc").model_uri
    return uris


def register_models(ref: RunRef, model_uris: Mapping[str, str], names: Mapping[str, str],
                    tags: Mapping[str, str], model_md5: str) -> dict[str, str]:
    """A version of each registered model (created when absent), linked to the run and its logged
    model, and tagged with the md5 of the model file it came from; a model file already registered
    (a rerun that reproduced it byte for byte) keeps its version instead of gaining a duplicate.
    Returns the version numbers by kind."""
    import mlflow

    versions = {}
    with using_tracking_uri(ref.tracking_uri):
        for kind, uri in model_uris.items():
            existing = versions_with_md5(ref.tracking_uri, names[kind], model_md5)
            versions[kind] = existing or str(mlflow.register_model(uri, names[kind],
                                                                   tags={**tags, MODEL_MD5_TAG: model_md5}).version)
    return versions


def versions_with_md5(tracking_uri: str, name: str, model_md5: str) -> str | None:
    """The (oldest) version of `name` registered from the model file with this md5, or None."""
    found = mlflow_client(tracking_uri).search_model_versions(f"name = '{name}' and tags.`{MODEL_MD5_TAG}` = '{model_md5}'")
    return min((str(v.version) for v in found), key=int, default=None)


def version_by_alias(tracking_uri: str, name: str, alias: str) -> dict[str, Any] | None:
    from mlflow.exceptions import MlflowException

    try:
        v = mlflow_client(tracking_uri).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return {"version": str(v.version), "run_id": v.run_id, "tags": dict(v.tags)}


def set_version_aliases(tracking_uri: str, name: str, version: str, aliases: list[str]) -> None:
    client = mlflow_client(tracking_uri)
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version)


def tag_version(tracking_uri: str, name: str, version: str, tags: Mapping[str, str], description: str | None = None) -> None:
    client = mlflow_client(tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if description is not None:
        client.update_model_version(name, version, description=description)
