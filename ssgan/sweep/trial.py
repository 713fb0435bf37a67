"""One trial: a Ray Train run of the base params with the trial's overrides, its epochs forwarded to Tune.

A trial runs as a Tune actor anywhere on the cluster; it and its workers never touch MLflow or the
project folder: what it learns leaves through Tune's reports.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from ssgan import metrics as M
from ssgan.config import Cluster, Config, flatten
from ssgan.data.parquet import Split
from ssgan.driver.data_refs import ShippedSplits, StreamedSplits
from ssgan.driver.fit import finish_run, fit
from ssgan.sweep.space import trial_config
from ssgan.training.checkpoint import model_from_payload
from ssgan.training.loop import TrainJob


@dataclass(frozen=True)
class TrialSpec:
    """What every trial needs; travels to the trial actors through the object store."""
    params: dict[str, Any]  # the base data/model/train sections
    data_dir: str  # the driver's prepared splits: a key into `shipped`, never opened by a trial
    cluster: Cluster
    sweep: str
    epochs: int
    workers: int
    use_gpu: bool
    evaluate_test: bool = False  # a label curve scores each trial's val-selected model on its test split
    # Each data dir's splits in the object store (ssgan.driver.data_refs), put by the sweep's driver
    # (run_tuner): a trial runs on any node and reads nothing by the driver's paths.
    shipped: Mapping[str, ShippedSplits | StreamedSplits] | None = None

    def data(self, data_dir: str | None = None) -> ShippedSplits | StreamedSplits:
        key = data_dir or self.data_dir
        if not self.shipped or key not in self.shipped:
            raise RuntimeError(f"{key}: its splits were not shipped to the trials (run_tuner ships every data dir)")
        return self.shipped[key]


def trial_train_config(spec: TrialSpec, overrides: Mapping[str, Any]) -> Config:
    cfg = trial_config(spec.params, overrides)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=spec.epochs, num_workers=spec.workers,
                                                              use_gpu=spec.use_gpu))


def trial_params(spec: TrialSpec, overrides: Mapping[str, Any]) -> dict[str, Any]:
    return flatten(trial_train_config(spec, overrides))


def overrides_of(keys: tuple[str, ...], config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's searched values: drawn up front (random search, label curves) or by Tune's searcher (optuna)."""
    return dict(config["trial"]["overrides"]) if "trial" in config else {k: config[k] for k in keys}


def run_trial(config: dict[str, Any], spec: TrialSpec, keys: tuple[str, ...]) -> None:
    """The Tune trainable: one Ray Train run of the trial's config, its reports forwarded to Tune."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = tune.get_context().get_trial_id()
    cfg = trial_train_config(spec, overrides_of(keys, config))
    data = spec.data((config.get("trial") or {}).get("data_dir"))
    # Named by sweep and trial, so a trial restarted by `--resume` continues from its own checkpoint.
    name = f"{spec.sweep}-{trial_id}"
    state = fit(TrainJob(cfg, data, run_key=trial_id), spec.cluster, name=name, callbacks=[TuneReportCallback()])
    if spec.evaluate_test:
        tune.report(selected_model_scores(state, data.test_split()))
    finish_run(spec.cluster, name)


def selected_model_scores(state: dict[str, Any], test: Split) -> dict[str, float]:
    """The val-selected model's val error and, scored once, its test error (reported, never selected on)."""
    model = model_from_payload(state["best"])
    accuracy = M.accuracy(M.predict(model.discriminator, test.images), test.labels)
    return {M.VAL_ERROR: 1.0 - float(state["best"]["val_accuracy"]), M.TEST_ERROR: 1.0 - accuracy,
            M.BEST_EPOCH: float(state["best"]["epoch"])}
