"""`ssgan tune`: check and draw params' `tune` space, run it through the Tuner, and write the best
trial's params file and a table of the trials (from their child MLflow runs)."""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from ssgan import metrics as M
from ssgan.config import Cluster, ConfigError, flatten, to_dict
from ssgan.data.identity import TRAINING_SPLITS, splits_digest
from ssgan.data.parquet import check_prepared
from ssgan.driver import lease
from ssgan.driver.cluster import check_local_cpus, check_storage, storage_uri
from ssgan.sweep.space import (TRIAL_SECTIONS, TuneConfig, check_space, check_trials, sample_trials, trial_config,
                               tune_from_mapping, with_overrides)
from ssgan.sweep.trial import TrialSpec
from ssgan.sweep.trial_log import OVERRIDES_TAG, STOPPED_TAG, SWEEP_TAG
from ssgan.sweep.tuner import SweepError, TunerSpec, remove_sweep_dirs, run_tuner, search
from ssgan.tracking import runs as tracking
from ssgan.util.fileio import atomic_write_many, csv_bytes
from ssgan.util.names import check_name
from ssgan.util.plots import sweep_png


@dataclass(frozen=True)
class SweepOutputs:
    best: Path  # tune/best.yaml: the params file with the best trial's values
    trials: Path  # tune/trials.csv: one row per trial


def sweep_key(params: Mapping[str, Any], tc: TuneConfig, data_dir: Path) -> str:
    text = json.dumps({"params": params, "tune": to_dict(tc)}, sort_keys=True, default=str)
    return hashlib.sha256(f"{text}\n{splits_digest(data_dir, TRAINING_SPLITS)}".encode()).hexdigest()[:12]


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
    name = check_name(f"sweep-{sweep_key(base, tc, data_dir)}" if name is None else name, "tune --name")
    epochs = tc.epochs or trial_config(base, {}).train.epochs
    spec = TrialSpec(base, str(data_dir), cluster, name, epochs, tc.workers_per_trial, tc.use_gpu)
    keys = tuple(p.key for p in tc.space)
    param_space, search_alg, num_samples = search(tc, trials)  # fails on a missing optuna before Ray starts

    expected = len(trials) if trials is not None else num_samples
    # Held until the sweep's folders are gone: a second `ssgan tune` of this name (or its --resume)
    # must not mark this one's parent KILLED, restore its experiment or delete its trials.
    with lease.hold(storage, name, f"sweep {name!r}", "another `ssgan tune` of this name is running: wait for it "
                                                      "to finish, or give this one another --name"):
        parent = run_tuner(TunerSpec(
            tune=tc, trials=spec, keys=keys, param_space=param_space, search_alg=search_alg, num_samples=num_samples,
            storage=storage, tracking_uri=tracking_uri, artifact_root=artifact_root, resume=resume,
            open_parent=functools.partial(_open_parent, tracking_uri, artifact_root, base, tc, name, data_dir),
            describe=f"{expected} trial(s), {epochs} epochs max, {tc.scheduler}, {tc.search} search",
            command="ssgan tune"))
        return _finish(params, tc, parent, name, outputs, storage, expected=expected)


def _open_parent(tracking_uri: str, artifact_root: Path | None, base: Mapping[str, Any], tc: TuneConfig, name: str,
                 data_dir: Path) -> tracking.RunRef:
    from ssgan.data.parquet import describe

    source = describe(data_dir / "val.parquet")[0]["source"]
    settings = {f"tune.{k}": v for k, v in to_dict(tc).items() if k != "space"}
    space = {f"tune.space.{p.key}": f"{p.kind} {list(p.values)}" for p in tc.space}
    return tracking.start_run(tracking_uri, f"ssgan-{source}", {**flatten(trial_config(base, {})), **settings, **space},
                              artifact_root, run_name=f"sweep {name}", tags={SWEEP_TAG: name, "ssgan.mode": "sweep"})


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
    remove_sweep_dirs(storage, name)  # the results are in MLflow and tune/; the checkpoints are spent
    print(f"[ssgan] sweep {name}: best trial {best['trial_id']} {tc.metric} {best[f'best_{tc.metric}']:.4f} "
          f"({' '.join(f'{k}={v}' for k, v in winners.items())}); wrote {outputs.best} and {outputs.trials}", flush=True)
    return {"parent_run_id": parent.run_id, "best": best, "rows": rows}
