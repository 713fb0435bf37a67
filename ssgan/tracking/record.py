"""A tracking store that lacks the run behind the pipeline's outputs gets one, made from those outputs.

DVC reruns a stage only when its inputs change. On a fresh clone (a new local mlflow.db) or after
MLFLOW_TRACKING_URI is pointed at a new server, `dvc repro` finds models/model.pt, plots/ and
metrics.json matching dvc.lock byte for byte and skips train and evaluate, so the store would
never hold the run, its test metrics or its registered versions, and `models:/…@champion` would
not resolve. The promote stage (always run) calls `record` first: it logs the committed outputs as
the run that made them: the params from the model file's config, each epoch of plots/train.csv,
the test metrics of metrics.json at the selected epoch, the figures, both models registered,
the same lineage tags and datasets as a trained run, and the tag `ssgan.recorded_from`. Nothing is
trained or evaluated again: the numbers are the ones DVC committed.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ssgan import metrics as M
from ssgan.config import flatten
from ssgan.tracking.lineage import MODEL_REQUIREMENTS, record_lineage
from ssgan.tracking import registry
from ssgan.tracking import runs as tracking
from ssgan.tracking.promote import DATA_KEY_TAG, data_key, model_names
from ssgan.training.checkpoint import load_model

RECORDED_TAG = "ssgan.recorded_from"


@dataclass(frozen=True)
class PipelineOutputs:
    model: Path  # models/model.pt
    history: Path  # plots/train.csv
    metrics: Path  # metrics.json
    figures: tuple[Path, ...]  # logged as artifacts when present (curves, samples, confusion, per-class)
    per_class: Path | None = None  # plots/test_accuracy_class.csv: test_accuracy_class_<i> metrics


def history_rows(text: str) -> list[dict[str, float]]:
    """plots/train.csv as one dict per epoch; empty cells (an epoch without a probe score) left out."""
    return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(io.StringIO(text))]


def record(outputs: PipelineOutputs, data_dir: Path, tracking_uri: str, artifact_root: Path | None,
           lineage: Mapping[str, str]) -> tracking.RunRef | None:
    """Log the outputs as a run when no run in the store wrote this model file; returns it, or None
    when the store already has one."""
    model_bytes = Path(outputs.model).read_bytes()
    md5 = hashlib.md5(model_bytes).hexdigest()
    if tracking.find_run(tracking_uri, tracking.MODEL_MD5_TAG, md5) is not None:
        return None
    model = load_model(outputs.model)
    cfg, source = model.config, model.meta.source
    rows = history_rows(Path(outputs.history).read_text())
    test = {k: float(v) for k, v in json.loads(Path(outputs.metrics).read_text()).items()
            if k not in (M.BEST_EPOCH, M.VAL_ACCURACY) and isinstance(v, (int, float))}
    run = tracking.start_run(tracking_uri, f"ssgan-{source}", flatten(cfg), artifact_root, run_name=cfg.train.mode,
                             tags={"ssgan.mode": cfg.train.mode, RECORDED_TAG: "dvc outputs"})
    try:
        for row in rows:
            tracking.log_epoch(run, row)
        if outputs.per_class is not None and Path(outputs.per_class).exists():
            for r in csv.DictReader(io.StringIO(Path(outputs.per_class).read_text())):
                test[M.test_accuracy_class(int(r["class_index"]))] = float(r[M.TEST_ACCURACY_CLASS])
        tracking.log_metrics(run, test, step=model.epoch)
        trained_g = cfg.train.mode == "ssgan"
        # A supervised run's samples.png is a note that G was never trained: not logged, as train does not.
        tracking.log_artifact_bytes(run, {p.name: Path(p).read_bytes() for p in (outputs.history, *outputs.figures)
                                          if Path(p).exists() and (trained_g or Path(p).name != "samples.png")})
        uris = registry.log_models(run, model, MODEL_REQUIREMENTS, generator=trained_g)
        tracking.set_tag(run, tracking.MODEL_MD5_TAG, md5)
        val_set = data_key(data_dir)
        record_lineage(run, data_dir, source, model, lineage, val_set)
        registry.register_models(run, uris, model_names(source),
                                 {DATA_KEY_TAG: val_set, **lineage, "ssgan.run_id": run.run_id}, md5)
    except BaseException:
        tracking.end_run(run, "FAILED")
        raise
    tracking.end_run(run)
    return run
