"""The evaluate stage: test metrics of the model selected on val, to metrics.json, a confusion plot and MLflow."""
from __future__ import annotations

import json
from pathlib import Path

from ssgan import metrics as M
from ssgan import tracking
from ssgan.checkpoint import load_model
from ssgan.config import EvaluateConfig
from ssgan.data.parquet import read_split
from ssgan.fileio import atomic_write, csv_bytes, json_bytes


def evaluate(cfg: EvaluateConfig, model_path: Path, data_dir: Path, run_info: Path, metrics_path: Path,
             confusion_path: Path, tracking_uri: str) -> dict:
    """Test metrics of the val-selected model: metrics.json, a confusion plot, and the same numbers in MLflow."""
    model = load_model(model_path)
    test = read_split(Path(data_dir) / "test.parquet")
    preds = M.predict(model.discriminator, test.images, cfg.batch_size)
    acc = M.accuracy(preds, test.labels)
    results = {M.TEST_ACCURACY: acc, M.TEST_ERROR: 1.0 - acc, M.VAL_ACCURACY: model.val_accuracy,
               M.BEST_EPOCH: model.epoch}
    names = model.meta.class_names
    rows = [{"actual": names[a], "predicted": names[p]} for a, p in zip(test.labels, preds)]
    atomic_write(confusion_path, csv_bytes(rows, ["actual", "predicted"]))
    atomic_write(metrics_path, json_bytes(results))
    info = json.loads(Path(run_info).read_text())
    run = tracking.RunRef(tracking_uri, info["run_id"], info["experiment"])
    if tracking.run_exists(run):
        tracking.log_metrics(run, {M.TEST_ACCURACY: acc, M.TEST_ERROR: 1.0 - acc}, step=model.epoch)
        tracking.log_artifact(run, confusion_path)
    else:
        print(f"[ssgan] MLflow run {run.run_id} is not in {tracking_uri}; test metrics written to {metrics_path} only")
    return results
