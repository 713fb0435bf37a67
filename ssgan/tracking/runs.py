"""MLflow runs: open, continue and close them; their params, metrics, tags, datasets and artifacts.

Everything here runs on the driver side, never in a Ray worker or Tune trial (they may be other
machines); a sweep's trials are logged by a Tune callback in the driver process (ssgan.sweep.tuner):
the driver opens one run per training (`start_run`); rank 0's per-epoch reports reach
`log_epoch` through a Ray Train callback in the controller, on the driver's node; the driver
logs the selected models and sample grid when training ends and tags the run with the md5 of
the model file it wrote; the evaluate stage finds the run by that tag (`find_run`) and adds the
test metrics to it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

# The tag linking a run to the model file it wrote: the file's md5, as dvc.lock records it.
MODEL_MD5_TAG = "ssgan.model_md5"
# The tag linking a run to its Ray Train run (ssgan.driver.resume.run_key): an interrupted run is continued.
RUN_KEY_TAG = "ssgan.run_key"


@dataclass(frozen=True)
class RunRef:
    """Where a training's metrics go: picklable, so it travels to Ray workers."""
    tracking_uri: str
    run_id: str
    experiment_name: str


def mlflow_client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent calls (log_model, register_model) read a process-wide tracking URI, and
    `mlflow.set_tracking_uri` also writes MLFLOW_TRACKING_URI to the environment: set both for the
    block, then put back exactly what was there, so the library changes no global state."""
    import mlflow

    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    uri_before = mlflow.get_tracking_uri()
    # Explicitly set before (not just the environment's or the default value): restore it as set.
    explicit = env_before is not None and env_before != uri_before
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(uri_before if explicit else None)
        if env_before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_before


def start_run(tracking_uri: str, experiment_name: str, params: Mapping[str, Any], artifact_root: Path | None = None,
              run_name: str | None = None, tags: Mapping[str, str] | None = None) -> RunRef:
    """Create (or reuse) the experiment and open a run holding the flattened params."""
    from mlflow.entities import Param

    client = mlflow_client(tracking_uri)
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
    mlflow_client(ref.tracking_uri).log_batch(ref.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def log_epoch(ref: RunRef, metrics: Mapping[str, float], skip: frozenset[int] = frozenset()) -> None:
    """One epoch's report (it carries `epoch` and `step`), logged with MLflow's step = epoch, unless the
    run already holds that epoch (`skip`: a resumed run retrains epochs it logged before the interrupt)."""
    if int(metrics["epoch"]) in skip:
        return
    log_metrics(ref, {k: v for k, v in metrics.items() if k not in ("epoch", "step")}, step=int(metrics["epoch"]))


def log_artifact(ref: RunRef, path: Path, artifact_path: str | None = None) -> None:
    mlflow_client(ref.tracking_uri).log_artifact(ref.run_id, str(path), artifact_path)


def log_artifact_bytes(ref: RunRef, files: Mapping[str, bytes]) -> None:
    """Log in-memory files under their names (the outputs are renamed into place only afterwards)."""
    with tempfile.TemporaryDirectory(prefix="ssgan-artifacts-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
            log_artifact(ref, Path(tmp) / name)


def end_run(ref: RunRef, status: str = "FINISHED") -> None:
    mlflow_client(ref.tracking_uri).set_terminated(ref.run_id, status=status)


def reopen_run(ref: RunRef) -> None:
    """Mark an interrupted run as running again: its training continues from a checkpoint."""
    mlflow_client(ref.tracking_uri).update_run(ref.run_id, status="RUNNING")


def logged_epochs(ref: RunRef, metric: str) -> set[int]:
    return {m.step for m in mlflow_client(ref.tracking_uri).get_metric_history(ref.run_id, metric)}


def run_status(ref: RunRef) -> str:
    return mlflow_client(ref.tracking_uri).get_run(ref.run_id).info.status


def set_tag(ref: RunRef, key: str, value: str) -> None:
    mlflow_client(ref.tracking_uri).set_tag(ref.run_id, key, value)


def log_params(ref: RunRef, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    mlflow_client(ref.tracking_uri).log_batch(ref.run_id, params=[Param(k, str(v)) for k, v in sorted(params.items())])


def child_runs(ref: RunRef, metric: str) -> list[dict[str, Any]]:
    """The runs nested under `ref` (tag mlflow.parentRunId), oldest first, each as a plain dict with
    its tags, status, start/end times (ms) and `metric` by step."""
    client = mlflow_client(ref.tracking_uri)
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

    client = mlflow_client(tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    if not ids:
        return None
    runs = client.search_runs(ids, filter_string=f"tags.`{tag}` = '{value}'", order_by=["attributes.start_time DESC"],
                              max_results=1)
    if not runs:
        return None
    return RunRef(tracking_uri, runs[0].info.run_id, client.get_experiment(runs[0].info.experiment_id).name)


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
    mlflow_client(ref.tracking_uri).log_inputs(ref.run_id, datasets=inputs)


def metric_history(ref: RunRef, metric: str) -> dict[int, float]:
    return {m.step: m.value for m in mlflow_client(ref.tracking_uri).get_metric_history(ref.run_id, metric)}


def run_tags(ref: RunRef) -> dict[str, str]:
    return dict(mlflow_client(ref.tracking_uri).get_run(ref.run_id).data.tags)


def run_ref(tracking_uri: str, run_id: str) -> RunRef:
    client = mlflow_client(tracking_uri)
    return RunRef(tracking_uri, run_id, client.get_experiment(client.get_run(run_id).info.experiment_id).name)
