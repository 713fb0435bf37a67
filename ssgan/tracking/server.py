"""A tracking server is checked once, before anything starts: it answers, and it lets ssgan in.

Unchecked, MLflow retries an unreachable server for minutes (its HTTP client backs off seven
times) and then ends in a long traceback, after a training may already have run. Two requests
with short timeouts say instead, in one line, which URI failed and what to fix.
"""
from __future__ import annotations

from ssgan.util.redact import redact_uri

TIMEOUT_S = 10.0


class TrackingError(RuntimeError):
    """The MLflow tracking server cannot be used as configured."""


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_server(uri: str, timeout_s: float = TIMEOUT_S) -> None:
    """An http(s) tracking URI must answer /health, then one authenticated API call; other URIs
    (a local sqlite store, a folder) have nothing to reach."""
    if not is_server(uri):
        return
    import requests

    shown = redact_uri(uri)
    try:
        health = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s)
    except requests.RequestException as err:
        reason = type(err).__name__ if isinstance(err, requests.Timeout) else "no connection"
        raise TrackingError(f"MLFLOW_TRACKING_URI={shown}: no MLflow tracking server answers ({reason} within "
                            f"{timeout_s:g} s); start it (`mlflow server --host HOST --port PORT --serve-artifacts`) "
                            f"or fix MLFLOW_TRACKING_URI") from None
    if health.status_code != 200:
        raise TrackingError(f"MLFLOW_TRACKING_URI={shown}: {uri.rstrip('/')}/health answered HTTP {health.status_code}; "
                            f"is this an MLflow tracking server?")
    # /health needs no credentials; the API may: one request, no retries, through MLflow's own client
    # (it adds MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN as configured); 401 and
    # 403 are not retried.
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except MlflowException as err:
        first = (str(err).strip().splitlines() or ["refused"])[0][:200]
        raise TrackingError(f"MLFLOW_TRACKING_URI={shown}: the tracking server refused ssgan ({first}); check "
                            f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)") from None
