"""The only module that talks to MLflow.

Everything here runs on the driver side, never in a Ray worker or Tune trial (they may be other
machines); a sweep's trials are logged by a Tune callback in the driver process (ssgan.sweep):
the driver opens one run per training (`start_run`); rank 0's per-epoch reports reach
`log_epoch` through a Ray Train callback in the controller, on the driver's node; the driver
logs the selected models and sample grid when training ends and tags the run with the md5 of
the model file it wrote; the evaluate stage finds the run by that tag (`find_run`) and adds the
test metrics to it.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ssgan.checkpoint import LoadedModel


# The tag linking a run to the model file it wrote: the file's md5, as dvc.lock records it.
MODEL_MD5_TAG = "ssgan.model_md5"
# The tag linking a run to its Ray Train run (ssgan.resume.run_key): an interrupted run is continued.
RUN_KEY_TAG = "ssgan.run_key"


@dataclass(frozen=True)
class RunRef:
    """Where a training's metrics go: picklable, so it travels to Ray workers."""
    tracking_uri: str
    run_id: str
    experiment_name: str


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def start_run(tracking_uri: str, experiment_name: str, params: Mapping[str, Any], artifact_root: Path | None = None,
              run_name: str | None = None, tags: Mapping[str, str] | None = None) -> RunRef:
    """Create (or reuse) the experiment and open a run holding the flattened params."""
    from mlflow.entities import Param

    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        location = (Path(artifact_root) / experiment_name).resolve().as_uri() if artifact_root else None
        experiment_id = client.create_experiment(experiment_name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in sorted(params.items())])
    return RunRef(tracking_uri, run.info.run_id, experiment_name)


def log_metrics(ref: RunRef, metrics: Mapping[str, float], step: int) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    _client(ref.tracking_uri).log_batch(ref.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def log_epoch(ref: RunRef, metrics: Mapping[str, float], skip: frozenset[int] = frozenset()) -> None:
    """One epoch's report (it carries `epoch` and `step`), logged with MLflow's step = epoch, unless the
    run already holds that epoch (`skip`: a resumed run retrains epochs it logged before the interrupt)."""
    if int(metrics["epoch"]) in skip:
        return
    log_metrics(ref, {k: v for k, v in metrics.items() if k not in ("epoch", "step")}, step=int(metrics["epoch"]))


def log_artifact(ref: RunRef, path: Path, artifact_path: str | None = None) -> None:
    _client(ref.tracking_uri).log_artifact(ref.run_id, str(path), artifact_path)


def log_artifact_bytes(ref: RunRef, files: Mapping[str, bytes]) -> None:
    """Log in-memory files under their names (the outputs are renamed into place only afterwards)."""
    with tempfile.TemporaryDirectory(prefix="ssgan-artifacts-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
            log_artifact(ref, Path(tmp) / name)


def end_run(ref: RunRef, status: str = "FINISHED") -> None:
    _client(ref.tracking_uri).set_terminated(ref.run_id, status=status)


def reopen_run(ref: RunRef) -> None:
    """Mark an interrupted run as running again: its training continues from a checkpoint."""
    _client(ref.tracking_uri).update_run(ref.run_id, status="RUNNING")


def logged_epochs(ref: RunRef, metric: str) -> set[int]:
    return {m.step for m in _client(ref.tracking_uri).get_metric_history(ref.run_id, metric)}


def run_status(ref: RunRef) -> str:
    return _client(ref.tracking_uri).get_run(ref.run_id).info.status


def set_tag(ref: RunRef, key: str, value: str) -> None:
    _client(ref.tracking_uri).set_tag(ref.run_id, key, value)


def log_params(ref: RunRef, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    _client(ref.tracking_uri).log_batch(ref.run_id, params=[Param(k, str(v)) for k, v in sorted(params.items())])


def child_runs(ref: RunRef, metric: str) -> list[dict[str, Any]]:
    """The runs nested under `ref` (tag mlflow.parentRunId), oldest first, each as a plain dict with
    its tags, status, start/end times (ms) and `metric` by step."""
    client = _client(ref.tracking_uri)
    experiment = client.get_experiment_by_name(ref.experiment_name)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{ref.run_id}'",
                              order_by=["attributes.start_time ASC"], max_results=10000)
    return [{"run_id": r.info.run_id, "status": r.info.status, "tags": dict(r.data.tags),
             "start_ms": r.info.start_time, "end_ms": r.info.end_time,
             "history": {m.step: m.value for m in client.get_metric_history(r.info.run_id, metric)}}
            for r in runs]


def find_run(tracking_uri: str, tag: str, value: str) -> RunRef | None:
    """The newest run carrying `tag` = `value` in any experiment (None when there is none)."""
    from mlflow.entities import ViewType

    client = _client(tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    if not ids:
        return None
    runs = client.search_runs(ids, filter_string=f"tags.`{tag}` = '{value}'", order_by=["attributes.start_time DESC"],
                              max_results=1)
    if not runs:
        return None
    return RunRef(tracking_uri, runs[0].info.run_id, client.get_experiment(runs[0].info.experiment_id).name)


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
    mlflow.set_tracking_uri(ref.tracking_uri)
    # By run_id, not inside `with mlflow.start_run(...)`: leaving that block marks the run FINISHED
    # while the driver still owes it the md5 tag, lineage and registration.
    experiment_id = _client(ref.tracking_uri).get_run(ref.run_id).info.experiment_id

    def model_id(name: str) -> str:  # created in the run's experiment (log_model alone would use the default one)
        return mlflow.initialize_logged_model(name=name, source_run_id=ref.run_id, experiment_id=experiment_id).model_id

    classifier = mlflow.pytorch.log_model(Classifier(model.discriminator).eval(), name="classifier",
                                          input_example=np.zeros((2, h, w, c), np.uint8), pip_requirements=pip_requirements,
                                          run_id=ref.run_id, model_id=model_id("classifier"))
    if not generator:
        return {"classifier": classifier.model_uri}
    logged_g = mlflow.pytorch.log_model(GeneratorFromInput(g), name="generator", input_example=latent.numpy(),
                                         pip_requirements=pip_requirements, run_id=ref.run_id, model_id=model_id("generator"),
                                         # the input's layout, so serving builds the latents as generate_images does
                                         metadata={"latent_dim": g.latent_dim, "num_classes": g.num_classes})
    return {"classifier": classifier.model_uri, "generator": logged_g.model_uri}


def log_datasets(ref: RunRef, files: Mapping[str, tuple[Path, str, str]]) -> None:
    """Log prepared splits as MLflow dataset inputs: name -> (Parquet file, md5 digest, context)."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for name, (path, md5, context) in files.items():
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": both are the local-file source
            warnings.simplefilter("ignore")
            source = resolve_dataset_source(str(path))
        dataset = MetaDataset(source, name=name, digest=md5)
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)]))
    _client(ref.tracking_uri).log_inputs(ref.run_id, datasets=inputs)


def register_models(ref: RunRef, model_uris: Mapping[str, str], names: Mapping[str, str],
                    tags: Mapping[str, str], model_md5: str) -> dict[str, str]:
    """A version of each registered model (created when absent), linked to the run and its logged
    model, and tagged with the md5 of the model file it came from; a model file already registered
    (a rerun that reproduced it byte for byte) keeps its version instead of gaining a duplicate.
    Returns the version numbers by kind."""
    import mlflow

    mlflow.set_tracking_uri(ref.tracking_uri)
    versions = {}
    for kind, uri in model_uris.items():
        existing = versions_with_md5(ref.tracking_uri, names[kind], model_md5)
        versions[kind] = existing or str(mlflow.register_model(uri, names[kind], tags={**tags, MODEL_MD5_TAG: model_md5}).version)
    return versions


def versions_with_md5(tracking_uri: str, name: str, model_md5: str) -> str | None:
    """The (oldest) version of `name` registered from the model file with this md5, or None."""
    found = _client(tracking_uri).search_model_versions(f"name = '{name}' and tags.`{MODEL_MD5_TAG}` = '{model_md5}'")
    return min((str(v.version) for v in found), key=int, default=None)


def metric_history(ref: RunRef, metric: str) -> dict[int, float]:
    return {m.step: m.value for m in _client(ref.tracking_uri).get_metric_history(ref.run_id, metric)}


def run_tags(ref: RunRef) -> dict[str, str]:
    return dict(_client(ref.tracking_uri).get_run(ref.run_id).data.tags)


def run_ref(tracking_uri: str, run_id: str) -> RunRef:
    client = _client(tracking_uri)
    return RunRef(tracking_uri, run_id, client.get_experiment(client.get_run(run_id).info.experiment_id).name)


def version_by_alias(tracking_uri: str, name: str, alias: str) -> dict[str, Any] | None:
    from mlflow.exceptions import MlflowException

    try:
        v = _client(tracking_uri).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return {"version": str(v.version), "run_id": v.run_id, "tags": dict(v.tags)}


def set_version_aliases(tracking_uri: str, name: str, version: str, aliases: list[str]) -> None:
    client = _client(tracking_uri)
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version)


def tag_version(tracking_uri: str, name: str, version: str, tags: Mapping[str, str], description: str | None = None) -> None:
    client = _client(tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if description is not None:
        client.update_model_version(name, version, description=description)
