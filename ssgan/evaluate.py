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
from ssgan.images import confusion_png


def evaluate(cfg: EvaluateConfig, model_path: Path, data_dir: Path, run_info: Path, metrics_path: Path,
             confusion_path: Path, confusion_image: Path, tracking_uri: str) -> dict:
    """Test metrics of the val-selected model (EMA weights): metrics.json, confusion plots, the same in MLflow."""
    model = load_model(model_path)
    test = read_split(Path(data_dir) / "test.parquet")
    preds = M.predict(model.discriminator, test.images, cfg.batch_size)
    acc = M.accuracy(preds, test.labels)
    counts = M.confusion_matrix(preds, test.labels, model.meta.num_classes)
    test_metrics = {M.TEST_ACCURACY: acc, M.TEST_ERROR: 1.0 - acc}
    test_metrics.update({M.test_accuracy_class(i): float(a) for i, a in enumerate(M.per_class_accuracy(counts))
                         if a == a})  # NaN (class absent from test) is left out
    results = {**test_metrics, M.VAL_ACCURACY: model.val_accuracy, M.BEST_EPOCH: model.epoch}
    names = model.meta.class_names
    rows = [{"actual": names[a], "predicted": names[p]} for a, p in zip(test.labels, preds)]
    atomic_write(confusion_path, csv_bytes(rows, ["actual", "predicted"]))
    atomic_write(confusion_image, confusion_png(counts, names))
    atomic_write(metrics_path, json_bytes(results))
    info = json.loads(Path(run_info).read_text())
    run = tracking.RunRef(tracking_uri, info["run_id"], info["experiment"])
    if tracking.run_exists(run):
        tracking.log_metrics(run, test_metrics, step=model.epoch)
        tracking.log_artifact(run, confusion_path)
        tracking.log_artifact(run, confusion_image)
    else:
        print(f"[ssgan] MLflow run {run.run_id} is not in {tracking_uri}; test metrics written to {metrics_path} only")
    return results
