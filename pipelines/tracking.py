"""Where MLflow is, for the stages that use it: MLFLOW_TRACKING_URI or the project's store, a tracking
server checked before anything starts. Apart from pipelines/params.py so that the stages that never
touch MLflow (prepare, reference, add-labels) do not import it."""
from __future__ import annotations

import functools
import os
from pathlib import Path

from pipelines.params import project_root
from ssgan.config import ConfigError


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI, else a sqlite store in the project folder. A tracking server is checked the
    first time (it answers and lets us in: one line within seconds, not minutes of retries)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return f"sqlite:///{(root / 'mlflow.db').resolve()}"
    _check_server(uri)
    return uri


@functools.lru_cache(maxsize=None)
def _check_server(uri: str) -> None:
    from ssgan.tracking.server import check_server

    check_server(uri)


def artifact_root(root: Path) -> Path | None:
    """New experiments keep artifacts under ./mlruns unless a tracking server decides."""
    return None if os.environ.get("MLFLOW_TRACKING_URI") else (root / "mlruns").resolve()


def use_project_store(*models: str) -> None:
    """MLflow model URIs (runs:/, models:/) resolve against MLFLOW_TRACKING_URI, else this project's store;
    a model file never touches MLflow. A reading command never creates a store: with no
    MLFLOW_TRACKING_URI and no mlflow.db in the project (or outside any project), an MLflow URI is an error."""
    uris = [m for m in models if m.startswith(("runs:/", "models:/"))]
    if not uris:
        return
    root = project_root()
    if not os.environ.get("MLFLOW_TRACKING_URI") and not (root / "mlflow.db").is_file():
        raise ConfigError(f"{uris[0]}: no MLflow store to look it up in ({root / 'mlflow.db'} does not exist): set "
                          f"MLFLOW_TRACKING_URI to your tracking server, or run inside the project once `dvc repro` "
                          f"has trained and registered a model; a model file (models/model.pt) needs neither")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(root))
