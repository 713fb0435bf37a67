"""The evaluate stage: test metrics of the model selected on val, to metrics.json, plots and its MLflow run."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from typing import Any

import numpy as np

from ssgan import metrics as M
from ssgan.quality import measures as Q
from ssgan.tracking import runs as tracking
from ssgan.training.checkpoint import LoadedModel, load_model
from ssgan.config import Config, EvaluateConfig, QualityConfig
from ssgan.data.parquet import read_split
from ssgan.util.fileio import atomic_write_many, csv_bytes, json_bytes
from ssgan.util.plots import confusion_png
from ssgan.util.redact import redact_uri


def trains_generator(config: Config) -> bool:
    return config.train.mode == "ssgan"


@dataclass(frozen=True)
class EvaluateOutputs:
    metrics: Path  # metrics.json: the headline numbers `dvc exp show` lists
    per_class: Path  # plots/test_accuracy_class.csv: one row per class (kept out of metrics.json: ten more columns)
    confusion: Path  # plots/confusion.csv: one row per test image
    confusion_image: Path  # plots/confusion.png


def generation_quality(model: LoadedModel, test_images: np.ndarray, quality: QualityConfig, reference: Path | None,
                       inception_weights: Path | None, batch_size: int) -> dict[str, float]:
    """G's `quality.n_samples` samples against the test split: the reference classifier's metrics when
    `reference` exists, fid_inception when `inception_weights` is given; none for a supervised run,
    whose G is its random init (a number for it would read as a result in metrics.json and
    `dvc exp show`, which shows an absent key as "-")."""
    import torch

    from ssgan.quality.feature_nets import classifier_outputs, inception_features, reference_from_payload
    from ssgan.quality.inception import load_inception
    from ssgan.training.models import generate_images

    results: dict[str, float] = {}
    if not trains_generator(model.config) or (reference is None and inception_weights is None):
        return results
    images = generate_images(model.generator, quality.n_samples, seed=model.config.train.seed)
    if reference is not None:
        payload = torch.load(reference, map_location="cpu", weights_only=True)
        net = reference_from_payload(payload)
        fake_features, fake_probs = classifier_outputs(net, images, batch_size)
        real_features, _ = classifier_outputs(net, test_images, batch_size)
        results.update({Q.FID_CLASSIFIER_TEST: Q.fid(fake_features, real_features), Q.KID_CLASSIFIER_TEST: Q.kid(fake_features, real_features),
                        Q.IS_CLASSIFIER: Q.inception_score(fake_probs), Q.REFERENCE_TEST_ACCURACY: float(payload["test_accuracy"])})
    if inception_weights is not None:
        net = load_inception(inception_weights)
        results[Q.FID_INCEPTION_TEST] = Q.fid(inception_features(net, images), inception_features(net, test_images))
    return results


def evaluate(cfg: EvaluateConfig, model_path: Path, data_dir: Path, outputs: EvaluateOutputs, tracking_uri: str,
             quality: QualityConfig | None = None, reference: Path | None = None,
             inception_weights: Path | None = None) -> dict[str, Any]:
    """Test metrics of the val-selected model (EMA weights) and of its G: files first in memory, MLflow,
    then the files together."""
    model = load_model(model_path)
    test = read_split(Path(data_dir) / "test.parquet")
    preds = M.predict(model.discriminator, test.images, cfg.batch_size)
    acc = M.accuracy(preds, test.labels)
    counts = M.confusion_matrix(preds, test.labels, model.meta.num_classes)
    names = model.meta.class_names
    per_class = [{"class_index": i, "class": names[i], M.TEST_ACCURACY_CLASS: float(a)}
                 for i, a in enumerate(M.per_class_accuracy(counts)) if a == a]  # NaN (class absent from test) left out
    results = {M.TEST_ACCURACY: acc, M.TEST_ERROR: 1.0 - acc, M.VAL_ACCURACY: model.val_accuracy, M.BEST_EPOCH: model.epoch}
    generation = generation_quality(model, test.images, quality or QualityConfig(), reference, inception_weights,
                                    cfg.batch_size)
    if not trains_generator(model.config):
        print(f"[ssgan] {model_path} is a train.mode: supervised run: no generator was trained, so no generation "
              f"metrics (fid/kid/is) are reported")
    results.update(generation)
    rows = [{"actual": names[a], "predicted": names[p]} for a, p in zip(test.labels, preds)]
    files = {outputs.metrics: json_bytes(results),
             outputs.per_class: csv_bytes(per_class, ["class_index", "class", M.TEST_ACCURACY_CLASS]),
             outputs.confusion: csv_bytes(rows, ["actual", "predicted"]),
             outputs.confusion_image: confusion_png(counts, names)}

    run = tracking.find_run(tracking_uri, tracking.MODEL_MD5_TAG, hashlib.md5(Path(model_path).read_bytes()).hexdigest())
    if run is None:
        print(f"[ssgan] no MLflow run in {redact_uri(tracking_uri)} wrote {model_path}; test metrics go to {outputs.metrics} only")
    elif model.epoch in tracking.metric_history(run, M.TEST_ERROR):
        # Evaluated before (a forced rerun, a second clone's store): the run holds these numbers once.
        print(f"[ssgan] MLflow run {run.run_id} already holds the test metrics of {model_path}; not logged again")
    else:
        test_metrics = {M.TEST_ACCURACY: acc, M.TEST_ERROR: 1.0 - acc, **generation,
                        **{M.test_accuracy_class(r["class_index"]): r[M.TEST_ACCURACY_CLASS] for r in per_class}}
        tracking.log_metrics(run, test_metrics, step=model.epoch)
        tracking.log_artifact_bytes(run, {p.name: files[p] for p in (outputs.per_class, outputs.confusion,
                                                                     outputs.confusion_image)})
    atomic_write_many(files)
    return {**results, "run_id": run.run_id if run else None}
