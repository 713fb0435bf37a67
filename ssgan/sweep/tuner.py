"""The Tuner: the one path by which sweeps (`ssgan tune`) and label curves (`ssgan curve`) run their trials.

Three layers, as in Ray's examples: the command (ssgan.sweep.tune, ssgan.sweep.curve) checks and
draws the space and describes the run in one `TunerSpec`; `run_tuner` opens or continues the
parent MLflow run and runs a Tuner whose trials (ssgan.sweep.trial) each call the same
`ssgan.driver.fit.fit` as `ssgan train`, their reports forwarded to the scheduler, so ASHA stops
poor trials early and their CPUs go to the next; a Tune callback in this (the driver) process
writes each trial's child run (ssgan.sweep.trial_log).
"""
from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ssgan import metrics as M
from ssgan.config import ConfigError
from ssgan.driver.cluster import check_resources, connect, import_ray, scoped_environ
from ssgan.driver.data_refs import send_splits
from ssgan.driver.nodes import check_nodes
from ssgan.driver.resume import remove_run
from ssgan.util.names import check_name
from ssgan.sweep.space import SearchParam, TuneConfig, field_hint
from ssgan.sweep.trial import TrialSpec, overrides_of, run_trial, trial_params, trial_train_config
from ssgan.sweep.trial_log import SWEEP_TAG, TrialLog
from ssgan.tracking import runs as tracking

TRIAL_CPU = 0.01  # a trial function only waits on its TorchTrainer
# Tune saves the experiment's state at most every 10 s by default; a driver killed in between
# would make `--resume` rerun trials that had finished. The state is a few small files.
# The old output engine with verbose=0 prints nothing: our one line per trial says what matters.
TUNE_ENV = {"TUNE_GLOBAL_CHECKPOINT_S": "1", "RAY_AIR_NEW_OUTPUT": "0"}


class SweepError(RuntimeError):
    """The sweep cannot start or continue as asked."""


@dataclass(frozen=True, kw_only=True)
class TunerSpec:
    """One Tuner run: what the trials train, how they are drawn and scheduled, where they are kept."""
    tune: TuneConfig  # metric, scheduler, concurrency, workers and GPUs per trial
    trials: TrialSpec  # what every trial trains; its `sweep` names the experiment
    keys: tuple[str, ...]  # the searched params keys
    param_space: dict[str, Any]  # Tune's: `planned(...)` trials, or `optuna_space(...)` for a searcher
    search_alg: Any = None  # an adaptive searcher (Optuna), or None for trials planned up front
    num_samples: int = 1
    storage: str  # Ray storage URI of the experiment and its trials' runs
    tracking_uri: str
    artifact_root: Path | None
    open_parent: Callable[[], tracking.RunRef]  # opens the parent MLflow run when starting afresh
    describe: str  # for the progress line, e.g. "8 trial(s), 20 epochs max, asha, random search"
    command: str  # the command named in hints: "ssgan tune" or "ssgan curve"
    resume: bool = False  # continue the interrupted experiment of this name
    data_dirs: tuple[str, ...] = ()  # every prepared-splits dir a trial trains on, besides trials.data_dir


def planned(trials: list[dict[str, Any]], data_dirs: list[str | None] | None = None) -> dict[str, Any]:
    """Tune's param space for trials fixed up front, each with its overrides and (a curve) its own data."""
    import_ray()
    from ray import tune

    data_dirs = data_dirs or [None] * len(trials)
    return {"trial": tune.grid_search([{"overrides": o, "data_dir": d} for o, d in zip(trials, data_dirs)])}


def optuna_space(space: tuple[SearchParam, ...]) -> dict[str, Any]:
    """The space in Ray Tune's distributions, for a searcher that draws adaptively (Optuna)."""
    import_ray()
    from ray import tune

    out = {}
    for p in space:
        integer = field_hint(p.key) in (int, int | None)
        lo, hi = p.values[0], p.values[-1]
        if p.kind == "loguniform":
            out[p.key] = tune.lograndint(int(lo), int(hi) + 1) if integer else tune.loguniform(lo, hi)
        elif p.kind == "uniform":
            out[p.key] = tune.randint(int(lo), int(hi) + 1) if integer else tune.uniform(lo, hi)
        else:
            out[p.key] = tune.choice(list(p.values))
    return out


def scheduler(tc: TuneConfig, epochs: int):
    import_ray()
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if tc.scheduler == "fifo":
        return FIFOScheduler()
    # time_attr "epoch": a trial restarted from a checkpoint reports its true epoch.
    return ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=min(tc.grace_period, epochs),
                         reduction_factor=tc.reduction_factor)


def search(tc: TuneConfig, trials: list[dict[str, Any]] | None):
    """(param_space, search_alg, num_samples) for Tune."""

    if tc.search == "random":
        return planned(trials), None, 1
    try:
        import optuna  # noqa: F401  (first: Ray's wrapper imports even without it, then fails at use)
    except ImportError:
        raise ConfigError("tune.search: optuna is not installed; `pip install -e '.[optuna]'` or set tune.search: random") from None
    import_ray()
    from ray.tune.search.optuna import OptunaSearch

    mode = "min" if tc.metric == M.VAL_ERROR else "max"
    return optuna_space(tc.space), OptunaSearch(metric=tc.metric, mode=mode, seed=tc.seed), tc.num_samples


def run_tuner(run: TunerSpec) -> tracking.RunRef:
    """Run (or restore) the Tuner of `run`, the parent MLflow run opened or continued; returns the parent.
    The one path by which sweeps and label curves launch their trainings; the caller holds the lease
    of the sweep's name (ssgan.driver.lease), so what is marked KILLED or deleted here is its own."""
    tc, spec, keys, storage, command = run.tune, run.trials, run.keys, run.storage, run.command
    name, cluster = check_name(spec.sweep, "sweep"), spec.cluster  # before its name reaches any path
    import_ray()
    from ray import tune

    path = f"{storage}/{name}"
    restorable = tune.Tuner.can_restore(path)
    if run.resume and not restorable:
        raise SweepError(f"--resume: no interrupted run {name!r} in {storage}; run `{command}` without --resume")
    parent = tracking.find_run(run.tracking_uri, SWEEP_TAG, name)
    if run.resume and parent is None:  # before anything is deleted or restored: the trials' log needs its parent
        raise SweepError(f"--resume: {name!r} has no MLflow parent run in {run.tracking_uri} (another MLFLOW_TRACKING_URI?); "
                         f"point MLFLOW_TRACKING_URI at the store that started it, or run `{command}` without --resume")
    connect(cluster, extra_cpus=1)
    base = trial_train_config(spec, {}).train  # what every trial shares: its placement and data path
    check_resources(tc.workers_per_trial, tc.use_gpu, base.worker_resources())
    check_nodes(storage)
    # The trials run on any node: each gets its splits as object references, put once here.
    dirs = dict.fromkeys((spec.data_dir, *run.data_dirs))
    spec = dataclasses.replace(spec, shipped={d: send_splits(Path(d), spec.workers, base.stream_unlabeled,
                                                             with_test=spec.evaluate_test) for d in dirs})
    if run.resume:
        tracking.reopen_run(parent)
    else:
        if parent is not None and tracking.run_status(parent) == "RUNNING":
            tracking.end_run(parent, "KILLED")  # an earlier attempt that is being replaced
        if restorable:
            print(f"[ssgan] starting {name} afresh; `{command} --resume` would have continued the interrupted one",
                  flush=True)
        remove_sweep_dirs(storage, name)
        parent = run.open_parent()
    trainable = tune.with_resources(tune.with_parameters(run_trial, spec=spec, keys=keys),
                                    {"cpu": TRIAL_CPU, "gpu": 0})
    if run.resume:
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        log = TrialLog(parent, name, spec.epochs, tc.scheduler, run.artifact_root, functools.partial(trial_params, spec),
                       tc.metric)
        concurrency = tc.max_concurrent_trials or default_concurrency(tc)
        tuner = tune.Tuner(
            trainable, param_space=run.param_space,
            tune_config=tune.TuneConfig(metric=tc.metric, mode="min" if tc.metric == M.VAL_ERROR else "max",
                                        scheduler=scheduler(tc, spec.epochs), search_alg=run.search_alg,
                                        num_samples=run.num_samples, max_concurrent_trials=concurrency),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0,
                                      callbacks=[tune_callback(log, functools.partial(overrides_of, keys))]))
    print(f"[ssgan] {name}: {run.describe}; MLflow parent run {parent.run_id}", flush=True)
    try:
        # Read by Tune's controller, in this process, while the tuner runs.
        with scoped_environ(TUNE_ENV):
            tuner.fit()
    except BaseException:
        tracking.end_run(parent, "KILLED")
        raise
    return parent


def default_concurrency(tc: TuneConfig) -> int:
    import ray

    total = ray.cluster_resources().get("GPU" if tc.use_gpu else "CPU", 1)
    return max(1, int((total - (0 if tc.use_gpu else 1)) // tc.workers_per_trial))  # less the logical CPU added for trials


def remove_sweep_dirs(storage: str, name: str) -> None:
    """The Tune experiment and its trials' Ray Train runs (named <sweep>-<trial id>)."""
    check_name(name, "sweep")
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(storage)
    trial_dir = re.compile(re.escape(name) + r"-[0-9a-f]+_\d+")  # Tune's trial ids: <hex>_<index>
    for info in filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True)):
        if info.type == fs.FileType.Directory and trial_dir.fullmatch(info.base_name):
            remove_run(storage, info.base_name)
    remove_run(storage, name)


def tune_callback(log: TrialLog, overrides_of: Callable[[Mapping[str, Any]], Mapping[str, Any]]):
    """`log` as a Tune callback; `overrides_of(trial.config)` gives a trial's searched values."""
    from ray.tune import Callback

    class SweepTracker(Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            log.run(trial.trial_id, overrides_of(trial.config))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            log.result(trial.trial_id, overrides_of(trial.config), result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            log.complete(trial.trial_id, overrides_of(trial.config), trial.last_result)

        def on_trial_error(self, iteration, trials, trial, **info):
            log.error(trial.trial_id, overrides_of(trial.config), str(getattr(trial, "error_msg", "") or "error"))

    return SweepTracker()
