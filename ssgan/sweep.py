"""`ssgan tune`: a Ray Tune sweep in which every trial is a Ray Train run, tracked as nested MLflow runs.

Three layers, as in Ray's examples: the driver (`sweep`) checks and draws the space, opens the
parent MLflow run and runs a Tuner; each trial (`run_trial`, a Tune actor anywhere on the cluster)
builds its config and calls the same `distributed.fit` as `ssgan train`, whose Tune callback
forwards every epoch's report to the scheduler, so ASHA stops poor trials early and their CPUs go
to the next; a Tune callback in the driver process writes each trial's child run (ssgan.trial_log).
Trials and their workers never touch MLflow or the project folder.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from ssgan import metrics as M
from ssgan import tracking
from ssgan.config import Cluster, Config, ConfigError, flatten, to_dict
from ssgan.distributed import (before_ray_import, check_local_cpus, check_resources, check_storage, connect, finish_run, fit,
                               storage_uri)
from ssgan.fileio import atomic_write_many, csv_bytes
from ssgan.data.parquet import check_prepared
from ssgan.plots import sweep_png
from ssgan.data.identity import TRAINING_SPLITS, splits_digest
from ssgan.resume import remove_run
from ssgan.search_space import (TRIAL_SECTIONS, TuneConfig, check_space, check_trials, optuna_space, sample_trials,
                                trial_config, tune_from_mapping, with_overrides)
from ssgan.train import TrainJob
from ssgan.trial_log import OVERRIDES_TAG, STOPPED_TAG, SWEEP_TAG, TrialLog, tune_callback

TRIAL_CPU = 0.01  # a trial function only waits on its TorchTrainer
# Tune saves the experiment's state at most every 10 s by default; a driver killed in between
# would make `--resume` rerun trials that had finished. The state is a few small files.
# The old output engine with verbose=0 prints nothing: our one line per trial says what matters.
TUNE_ENV = {"TUNE_GLOBAL_CHECKPOINT_S": "1", "RAY_AIR_NEW_OUTPUT": "0"}


class SweepError(RuntimeError):
    """The sweep cannot start or continue as asked."""


@dataclass(frozen=True)
class SweepOutputs:
    best: Path  # tune/best.yaml: the params file with the best trial's values
    trials: Path  # tune/trials.csv: one row per trial


@dataclass(frozen=True)
class TrialSpec:
    """What every trial needs; travels to the trial actors through the object store."""
    params: dict[str, Any]  # the base data/model/train sections
    data_dir: str
    cluster: Cluster
    sweep: str
    epochs: int
    workers: int
    use_gpu: bool
    evaluate_test: bool = False  # a label curve scores each trial's val-selected model on its test split


def trial_train_config(spec: TrialSpec, overrides: Mapping[str, Any]) -> Config:
    cfg = trial_config(spec.params, overrides)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=spec.epochs, num_workers=spec.workers,
                                                              use_gpu=spec.use_gpu))


def trial_params(spec: TrialSpec, overrides: Mapping[str, Any]) -> dict[str, Any]:
    return flatten(trial_train_config(spec, overrides))


def overrides_of(keys: tuple[str, ...], config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's searched values: drawn up front (random search, label curves) or by Tune's searcher (optuna)."""
    return dict(config["trial"]["overrides"]) if "trial" in config else {k: config[k] for k in keys}


def planned(trials: list[dict[str, Any]], data_dirs: list[str | None] | None = None) -> dict[str, Any]:
    """Tune's param space for trials fixed up front, each with its overrides and (a curve) its own data."""
    before_ray_import()
    from ray import tune

    data_dirs = data_dirs or [None] * len(trials)
    return {"trial": tune.grid_search([{"overrides": o, "data_dir": d} for o, d in zip(trials, data_dirs)])}


def run_trial(config: dict[str, Any], spec: TrialSpec, keys: tuple[str, ...]) -> None:
    """The Tune trainable: one Ray Train run of the trial's config, its reports forwarded to Tune."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = tune.get_context().get_trial_id()
    cfg = trial_train_config(spec, overrides_of(keys, config))
    data_dir = (config.get("trial") or {}).get("data_dir") or spec.data_dir
    # Named by sweep and trial, so a trial restarted by `--resume` continues from its own checkpoint.
    name = f"{spec.sweep}-{trial_id}"
    state = fit(TrainJob(cfg, data_dir, run_key=trial_id), spec.cluster, name=name, callbacks=[TuneReportCallback()])
    if spec.evaluate_test:
        tune.report(selected_model_scores(state, data_dir))
    finish_run(spec.cluster, name)


def selected_model_scores(state: dict[str, Any], data_dir: str) -> dict[str, float]:
    """The val-selected model's val error and, scored once, its test error (reported, never selected on)."""
    from ssgan.checkpoint import model_from_payload
    from ssgan.data.parquet import read_split

    model = model_from_payload(state["best"])
    test = read_split(Path(data_dir) / "test.parquet")
    accuracy = M.accuracy(M.predict(model.discriminator, test.images), test.labels)
    return {M.VAL_ERROR: 1.0 - float(state["best"]["val_accuracy"]), M.TEST_ERROR: 1.0 - accuracy,
            M.BEST_EPOCH: float(state["best"]["epoch"])}


def sweep_key(params: Mapping[str, Any], tc: TuneConfig, data_dir: Path) -> str:
    text = json.dumps({"params": params, "tune": to_dict(tc)}, sort_keys=True, default=str)
    return hashlib.sha256(f"{text}\n{splits_digest(data_dir, TRAINING_SPLITS)}".encode()).hexdigest()[:12]


def _scheduler(tc: TuneConfig, epochs: int):
    before_ray_import()
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if tc.scheduler == "fifo":
        return FIFOScheduler()
    # time_attr "epoch": a trial restarted from a checkpoint reports its true epoch.
    return ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=min(tc.grace_period, epochs),
                         reduction_factor=tc.reduction_factor)


def _search(tc: TuneConfig, trials: list[dict[str, Any]] | None):
    """(param_space, search_alg, num_samples) for Tune."""

    if tc.search == "random":
        return planned(trials), None, 1
    try:
        import optuna  # noqa: F401  (first: Ray's wrapper imports even without it, then fails at use)
    except ImportError:
        raise ConfigError("tune.search: optuna is not installed; `pip install -e '.[optuna]'` or set tune.search: random") from None
    before_ray_import()
    from ray.tune.search.optuna import OptunaSearch

    mode = "min" if tc.metric == M.VAL_ERROR else "max"
    return optuna_space(tc.space), OptunaSearch(metric=tc.metric, mode=mode, seed=tc.seed), tc.num_samples


def sweep(params: Mapping[str, Any], data_dir: Path, outputs: SweepOutputs, tracking_uri: str,
          artifact_root: Path | None, cluster: Cluster, name: str | None = None, resume: bool = False) -> dict[str, Any]:
    """Run (or with `resume`, continue) the sweep of params' `tune` section; write best.yaml and trials.csv."""
    tc = tune_from_mapping(params)
    base = {k: params[k] for k in TRIAL_SECTIONS if params.get(k) is not None}
    if not tc.space:
        raise ConfigError("tune.space: empty; add a searched key, e.g. `train.lr: {loguniform: [0.0003, 0.01]}`")
    check_space(base, tc.space)
    trials = sample_trials(tc.space, tc.num_samples, tc.seed) if tc.search == "random" else None
    if trials is not None:
        check_trials(base, trials)
    check_prepared(Path(data_dir))
    data_dir = Path(data_dir).resolve()
    check_local_cpus(cluster, tc.workers_per_trial, tc.use_gpu)
    storage = storage_uri(cluster.storage_path)
    check_storage(storage)
    name = name or f"sweep-{sweep_key(base, tc, data_dir)}"
    epochs = tc.epochs or trial_config(base, {}).train.epochs
    spec = TrialSpec(base, str(data_dir), cluster, name, epochs, tc.workers_per_trial, tc.use_gpu)
    keys = tuple(p.key for p in tc.space)
    param_space, search_alg, num_samples = _search(tc, trials)  # fails on a missing optuna before Ray starts

    expected = len(trials) if trials is not None else num_samples
    parent = run_tuner(tc, spec, keys, param_space, search_alg, num_samples, storage, tracking_uri, artifact_root,
                       resume, functools.partial(_open_parent, tracking_uri, artifact_root, base, tc, name, data_dir),
                       f"{expected} trial(s), {epochs} epochs max, {tc.scheduler}, {tc.search} search", "ssgan tune")
    return _finish(params, tc, parent, name, outputs, storage, expected=expected)


def run_tuner(tc: TuneConfig, spec: TrialSpec, keys: tuple[str, ...], param_space: dict[str, Any], search_alg: Any,
              num_samples: int, storage: str, tracking_uri: str, artifact_root: Path | None, resume: bool,
              open_parent, what: str, command: str) -> tracking.RunRef:
    """Run (or restore) the Tuner of trials `spec`, the parent MLflow run opened or continued; returns the parent.
    The one path by which sweeps and label curves launch their trainings."""
    name, cluster = spec.sweep, spec.cluster
    for key, value in TUNE_ENV.items():
        os.environ.setdefault(key, value)
    before_ray_import()
    from ray import tune

    path = f"{storage}/{name}"
    restorable = tune.Tuner.can_restore(path)
    if resume and not restorable:
        raise SweepError(f"--resume: no interrupted run {name!r} in {storage}; run `{command}` without --resume")
    parent = tracking.find_run(tracking_uri, SWEEP_TAG, name)
    if resume and parent is None:  # before anything is deleted or restored: the trials' log needs its parent
        raise SweepError(f"--resume: {name!r} has no MLflow parent run in {tracking_uri} (another MLFLOW_TRACKING_URI?); "
                         f"point MLFLOW_TRACKING_URI at the store that started it, or run `{command}` without --resume")
    connect(cluster, extra_cpus=1)
    check_resources(tc.workers_per_trial, tc.use_gpu)
    if resume:
        tracking.reopen_run(parent)
    else:
        if parent is not None and tracking.run_status(parent) == "RUNNING":
            tracking.end_run(parent, "KILLED")  # an earlier attempt that is being replaced
        if restorable:
            print(f"[ssgan] starting {name} afresh; `{command} --resume` would have continued the interrupted one",
                  flush=True)
        _remove_sweep_dirs(storage, name)
        parent = open_parent()
    trainable = tune.with_resources(tune.with_parameters(run_trial, spec=spec, keys=keys),
                                    {"cpu": TRIAL_CPU, "gpu": 0})
    if resume:
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        log = TrialLog(parent, name, spec.epochs, tc.scheduler, artifact_root, functools.partial(trial_params, spec),
                       tc.metric)
        concurrency = tc.max_concurrent_trials or _default_concurrency(tc)
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(metric=tc.metric, mode="min" if tc.metric == M.VAL_ERROR else "max",
                                        scheduler=_scheduler(tc, spec.epochs), search_alg=search_alg,
                                        num_samples=num_samples, max_concurrent_trials=concurrency),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0,
                                      callbacks=[tune_callback(log, functools.partial(overrides_of, keys))]))
    print(f"[ssgan] {name}: {what}; MLflow parent run {parent.run_id}", flush=True)
    try:
        tuner.fit()
    except BaseException:
        tracking.end_run(parent, "KILLED")
        raise
    return parent



def _default_concurrency(tc: TuneConfig) -> int:
    import ray

    total = ray.cluster_resources().get("GPU" if tc.use_gpu else "CPU", 1)
    return max(1, int((total - (0 if tc.use_gpu else 1)) // tc.workers_per_trial))  # less the logical CPU added for trials


def _open_parent(tracking_uri: str, artifact_root: Path | None, base: Mapping[str, Any], tc: TuneConfig, name: str,
                 data_dir: Path) -> tracking.RunRef:
    from ssgan.data.parquet import describe

    source = describe(data_dir / "val.parquet")[0]["source"]
    settings = {f"tune.{k}": v for k, v in to_dict(tc).items() if k != "space"}
    space = {f"tune.space.{p.key}": f"{p.kind} {list(p.values)}" for p in tc.space}
    return tracking.start_run(tracking_uri, f"ssgan-{source}", {**flatten(trial_config(base, {})), **settings, **space},
                              artifact_root, run_name=f"sweep {name}", tags={SWEEP_TAG: name, "ssgan.mode": "sweep"})


def _remove_sweep_dirs(storage: str, name: str) -> None:
    """The Tune experiment and its trials' Ray Train runs (named <sweep>-<trial id>)."""
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(storage)
    trial_dir = re.compile(re.escape(name) + r"-[0-9a-f]+_\d+")  # Tune's trial ids: <hex>_<index>
    for info in filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True)):
        if info.type == fs.FileType.Directory and trial_dir.fullmatch(info.base_name):
            remove_run(storage, info.base_name)
    remove_run(storage, name)


def trial_rows(children: list[dict[str, Any]], keys: tuple[str, ...], metric: str) -> list[dict[str, Any]]:
    """tune/trials.csv's rows from the child runs."""
    better = min if metric == M.VAL_ERROR else max
    rows = []
    for child in children:
        history, tags = child["history"], child["tags"]
        overrides = json.loads(tags.get(OVERRIDES_TAG, "{}"))
        status = {"FINISHED": "finished", "KILLED": f"stopped ({tags.get(STOPPED_TAG, 'interrupted')})",
                  "FAILED": "failed"}.get(child["status"], child["status"].lower())
        rows.append({"trial_id": tags.get("ssgan.trial", "").rsplit("/", 1)[-1], **{k: overrides.get(k) for k in keys},
                     f"best_{metric}": round(better(history.values()), 6) if history else None,
                     f"last_{metric}": round(history[max(history)], 6) if history else None,
                     "epochs": max(history) if history else 0, "status": status,
                     "wall_s": round(((child["end_ms"] or child["start_ms"]) - child["start_ms"]) / 1000, 1),
                     "mlflow_run_id": child["run_id"]})
    return sorted(rows, key=lambda r: r["trial_id"])  # Tune's order: trial ids count up


def _finish(params: Mapping[str, Any], tc: TuneConfig, parent: tracking.RunRef, name: str, outputs: SweepOutputs,
            storage: str, expected: int) -> dict[str, Any]:
    keys = tuple(p.key for p in tc.space)
    rows = trial_rows(tracking.child_runs(parent, tc.metric), keys, tc.metric)
    done = [r for r in rows if not r["status"].startswith(("running", "stopped (interrupted"))]
    if len(done) < expected:
        tracking.end_run(parent, "KILLED")
        raise SweepError(f"sweep {name} interrupted after {len(done)} of {expected} trials; "
                         f"`ssgan tune --resume` continues it")
    scored = [r for r in rows if r[f"best_{tc.metric}"] is not None]
    if not scored:
        tracking.end_run(parent, "FAILED")
        raise SweepError(f"sweep {name}: no trial reported {tc.metric}; see the trial errors above")
    pick = min if tc.metric == M.VAL_ERROR else max
    best = pick(scored, key=lambda r: r[f"best_{tc.metric}"])
    winners = {k: best[k] for k in keys}
    header = (f"# ssgan tune {name}: the params file with the best trial's values ({best['trial_id']}, "
              f"{tc.metric} {best[f'best_{tc.metric}']:.4f} at {best['epochs']} epochs)\n")
    files = {outputs.best: (header + yaml.safe_dump(with_overrides(params, winners), sort_keys=False)).encode(),
             outputs.trials: csv_bytes(rows, list(rows[0])),
             Path("sweep.png"): sweep_png(rows, tc.space, f"best_{tc.metric}")}
    tracking.log_artifact_bytes(parent, {p.name: b for p, b in files.items()})
    tracking.log_params(parent, {f"best.{k}": v for k, v in winners.items()})
    tracking.log_metrics(parent, {tc.metric: best[f"best_{tc.metric}"]}, step=0)
    tracking.set_tag(parent, "ssgan.best_run_id", best["mlflow_run_id"])
    tracking.set_tag(parent, "ssgan.best_trial", best["trial_id"])
    del files[Path("sweep.png")]
    atomic_write_many(files)
    tracking.end_run(parent)
    _remove_sweep_dirs(storage, name)  # the results are in MLflow and tune/; the checkpoints are spent
    print(f"[ssgan] sweep {name}: best trial {best['trial_id']} {tc.metric} {best[f'best_{tc.metric}']:.4f} "
          f"({' '.join(f'{k}={v}' for k, v in winners.items())}); wrote {outputs.best} and {outputs.trials}", flush=True)
    return {"parent_run_id": parent.run_id, "best": best, "rows": rows}
