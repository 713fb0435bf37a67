"""Logged and registered models: the classifier (and a trained G) as MLflow PyTorch models of a run,
one registry version per model file (by its md5), and the aliases and tags promotion sets.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ssgan.tracking.runs import MODEL_MD5_TAG, RunRef, mlflow_client, using_tracking_uri
from ssgan.tracking.serving import Classifier, GeneratorFromInput
from ssgan.training.checkpoint import LoadedModel


def log_models(ref: RunRef, model: LoadedModel, pip_requirements: list[str], generator: bool = True) -> dict[str, str]:
    """Log the classifier (D) and, unless `generator` is false (a supervised run never trains G), the
    generator as MLflow PyTorch models (torch.export format); returns their model URIs by name
    ("classifier", "generator")."""
    import mlflow
    import mlflow.pytorch

    c, h, w = model.meta.image_shape
    g = model.generator.eval()
    latent = g.sample_latent(2, generator=torch.Generator().manual_seed(0))
    if g.num_classes:
        latent = torch.cat([latent, torch.eye(g.num_classes)[:2]], dim=1)
    # By run_id, not inside `with mlflow.start_run(...)`: leaving that block marks the run FINISHED
    # while the driver still owes it the md5 tag, lineage and registration.
    experiment_id = mlflow_client(ref.tracking_uri).get_run(ref.run_id).info.experiment_id

    def model_id(name: str) -> str:  # created in the run's experiment (log_model alone would use the default one)
        return mlflow.initialize_logged_model(name=name, source_run_id=ref.run_id, experiment_id=experiment_id).model_id

    uris = {}
    with using_tracking_uri(ref.tracking_uri):
        uris["classifier"] = mlflow.pytorch.log_model(
            Classifier(model.discriminator).eval(), name="classifier", input_example=np.zeros((2, h, w, c), np.uint8),
            pip_requirements=pip_requirements, run_id=ref.run_id, model_id=model_id("classifier")).model_uri
        if generator:
            uris["generator"] = mlflow.pytorch.log_model(
                GeneratorFromInput(g), name="generator", input_example=latent.numpy(), pip_requirements=pip_requirements,
                run_id=ref.run_id, model_id=model_id("generator"),
                # the input's layout, so serving builds the latents as generate_images does
                metadata={"latent_dim": g.latent_dim, "num_classes": g.num_classes}).model_uri
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
