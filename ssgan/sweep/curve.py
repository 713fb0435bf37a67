"""`ssgan curve`: test error against the number of labels, SSGAN and supervised-only, over seeds.

Every (labels per class, seed) gets its own prepared splits (`data.seed` = the seed, so the
labeled images differ between seeds too); every (labels, seed, mode) is one Ray Train run,
launched through the same Tuner path as a sweep (ssgan.sweep.tuner.run_tuner) with a FIFO scheduler, and
logged as a child of one parent MLflow run. Each run selects its model on val; its test error is
scored once, after selection, for the curve.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from ssgan import metrics as M
from ssgan.tracking import runs as tracking
from ssgan.config import Cluster, ConfigError, DataConfig, require, flatten, from_mapping, section_from_mapping, to_dict
from ssgan.data.prepare import prepare
from ssgan.driver import lease
from ssgan.driver.cluster import check_local_cpus, check_storage, storage_uri
from ssgan.util.fileio import atomic_write_many, csv_bytes
from ssgan.util.names import check_name, remove_tree_inside
from ssgan.util.plots import label_curve_png
from ssgan.sweep.space import TRIAL_SECTIONS, TuneConfig, with_overrides
from ssgan.sweep.trial import TrialSpec
from ssgan.sweep.tuner import TunerSpec, planned, run_tuner
from ssgan.sweep.trial_log import OVERRIDES_TAG, SWEEP_TAG

KEYS = ("data.n_labeled_per_class", "data.seed", "train.seed", "train.mode")
COLUMNS = ("labels_per_class", "labels", "mode", "seed", "val_error", "test_error", "best_epoch", "mlflow_run_id")


@dataclass(frozen=True)
class CurveConfig:
    labels: tuple[int, ...] = (1, 2, 5, 10, 20)  # labels per class
    seeds: int = 3  # seeds 0..seeds-1: the labeled draw (data.seed) and training (train.seed)
    modes: tuple[Literal["ssgan", "supervised"], ...] = ("ssgan", "supervised")
    epochs: int = 20  # per run
    steps_per_epoch: int | None = 50  # per run; null: train.steps_per_epoch
    workers_per_run: int = 1
    max_concurrent_runs: int | None = None  # null: as many as the cluster's CPUs hold
    use_gpu: bool = False

    def validate(self, s: str) -> None:
        require(len(self.labels) >= 1 and min(self.labels) >= 1, f"{s}.labels", "a non-empty list of integers >= 1", self.labels)
        require(len(set(self.labels)) == len(self.labels), f"{s}.labels", "distinct counts", self.labels)
        require(self.seeds >= 1, f"{s}.seeds", "an integer >= 1", self.seeds)
        require(len(self.modes) >= 1 and len(set(self.modes)) == len(self.modes), f"{s}.modes",
                 "a non-empty list of ssgan | supervised", self.modes)
        require(self.epochs >= 1, f"{s}.epochs", "an integer >= 1", self.epochs)
        require(self.steps_per_epoch is None or self.steps_per_epoch >= 1, f"{s}.steps_per_epoch",
                 "null or an integer >= 1", self.steps_per_epoch)
        require(self.workers_per_run >= 1, f"{s}.workers_per_run", "an integer >= 1", self.workers_per_run)
        require(self.max_concurrent_runs is None or self.max_concurrent_runs >= 1, f"{s}.max_concurrent_runs",
                 "null or an integer >= 1", self.max_concurrent_runs)


@dataclass(frozen=True)
class CurveOutputs:
    csv: Path  # plots/label_curve.csv
    png: Path  # plots/label_curve.png


def curve_from_mapping(params: Mapping[str, Any]) -> CurveConfig:
    values = params.get("curve") or {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"curve: expected a mapping of keys, got {type(values).__name__}")
    return section_from_mapping(CurveConfig, values, "curve")


def curve(params: Mapping[str, Any], outputs: CurveOutputs, work_dir: Path, tracking_uri: str,
          artifact_root: Path | None, cluster: Cluster, name: str | None = None, resume: bool = False) -> list[dict]:
    """Prepare every (labels, seed), train every (labels, seed, mode) on Ray, write the curve's CSV and PNG."""
    cc = curve_from_mapping(params)
    base = {k: params[k] for k in TRIAL_SECTIONS if params.get(k) is not None}
    if cc.steps_per_epoch is not None:
        base = with_overrides(base, {"train.steps_per_epoch": cc.steps_per_epoch})
    data_cfg = from_mapping(base, TRIAL_SECTIONS).data
    check_local_cpus(cluster, cc.workers_per_run, cc.use_gpu)
    storage = storage_uri(cluster.storage_path)
    check_storage(storage)
    key = hashlib.sha256(json.dumps({"params": base, "curve": to_dict(cc)}, sort_keys=True).encode()).hexdigest()[:12]
    name = check_name(f"curve-{key}" if name is None else name, "curve --name")
    # Held from before its splits are written until its folders are gone: a second `ssgan curve` of
    # this name must neither rewrite the splits this one's runs read nor touch its parent or trials.
    with lease.hold(storage, name, f"curve {name!r}", "another `ssgan curve` of this name is running: wait for it "
                                                      "to finish, or give this one another --name"):
        return _curve_held(cc, base, data_cfg, outputs, Path(work_dir), tracking_uri, artifact_root, cluster, storage,
                           name, resume)


def _curve_held(cc: CurveConfig, base: dict[str, Any], data_cfg: DataConfig, outputs: CurveOutputs, work_dir: Path,
                tracking_uri: str, artifact_root: Path | None, cluster: Cluster, storage: str, name: str,
                resume: bool) -> list[dict]:
    # Every split first: a label count a class cannot supply fails here, in one line, before any training.
    dirs = {}
    for labels in cc.labels:
        for seed in range(cc.seeds):
            out = Path(work_dir) / name / f"labels{labels}-seed{seed}"
            if not (resume and (out / "summary.json").exists()):
                # The curve measures random labeled draws of `labels` per class: an annotator's extra
                # labels (data.extra_labels) belong to the project's own split, not to these points.
                prepare(dataclasses.replace(data_cfg, n_labeled_per_class=labels, n_labeled=None, seed=seed,
                                            extra_labels=None), out)
            dirs[labels, seed] = str(out.resolve())
    trials, data_dirs = [], []
    for labels in cc.labels:
        for seed in range(cc.seeds):
            for mode in cc.modes:
                trials.append({"data.n_labeled_per_class": labels, "data.seed": seed, "train.seed": seed, "train.mode": mode})
                data_dirs.append(dirs[labels, seed])
    tc = TuneConfig(num_samples=1, max_concurrent_trials=cc.max_concurrent_runs, workers_per_trial=cc.workers_per_run,
                    use_gpu=cc.use_gpu, epochs=cc.epochs, scheduler="fifo")
    spec = TrialSpec(base, data_dirs[0], cluster, name, cc.epochs, cc.workers_per_run, cc.use_gpu, evaluate_test=True)
    open_parent = functools.partial(tracking.start_run, tracking_uri, f"ssgan-{data_cfg.source}",
                                    {**flatten(from_mapping(base, TRIAL_SECTIONS)), **{f"curve.{k}": v for k, v in to_dict(cc).items()}},
                                    artifact_root, f"curve {name}", {SWEEP_TAG: name, "ssgan.mode": "curve"})
    parent = run_tuner(TunerSpec(
        tune=tc, trials=spec, keys=KEYS, param_space=planned(trials, data_dirs), data_dirs=tuple(data_dirs), storage=storage,
        tracking_uri=tracking_uri, artifact_root=artifact_root, resume=resume, open_parent=open_parent,
        describe=f"{len(trials)} runs ({len(cc.labels)} label counts x {cc.seeds} seeds x {len(cc.modes)} modes), "
                 f"{cc.epochs} epochs each", command="ssgan curve"))
    classes = _num_classes(dirs)
    rows = [dict(r, labels=r["labels_per_class"] * classes) for r in curve_rows(tracking.child_runs(parent, M.TEST_ERROR))]
    if len(rows) < len(trials) or any(r["test_error"] is None for r in rows):
        tracking.end_run(parent, "KILLED")
        raise RuntimeError(f"{name}: {sum(r['test_error'] is not None for r in rows)} of {len(trials)} runs finished; "
                           f"`ssgan curve --resume` continues")
    files = {outputs.csv: csv_bytes(rows, COLUMNS), outputs.png: label_curve_png(summary(rows))}
    tracking.log_artifact_bytes(parent, {p.name: b for p, b in files.items()})
    atomic_write_many(files)
    tracking.end_run(parent)
    remove_tree_inside(Path(work_dir), Path(work_dir) / name)  # the splits are reproducible from params
    return rows


def _num_classes(dirs: Mapping[Any, str]) -> int:
    from ssgan.data.parquet import describe

    return int(describe(Path(next(iter(dirs.values()))) / "labeled.parquet")[0]["num_classes"])


def curve_rows(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run: its labels, mode and seed (from the overrides tag), selected val error and test error."""
    rows = []
    for child in children:
        o = json.loads(child["tags"].get(OVERRIDES_TAG, "{}"))
        test = child["history"]
        rows.append({"labels_per_class": int(o["data.n_labeled_per_class"]), "mode": o["train.mode"],
                     "seed": int(o["train.seed"]),
                     "val_error": float(child["tags"]["ssgan.selected_val_error"]) if "ssgan.selected_val_error" in child["tags"] else None,
                     "test_error": round(next(iter(test.values())), 6) if test else None,
                     "best_epoch": next(iter(test)) if test else 0, "mlflow_run_id": child["run_id"]})
    return sorted(rows, key=lambda r: (r["labels_per_class"], r["mode"], r["seed"]))


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of test error per (labels, mode): what the plot draws."""
    out = []
    for labels in sorted({r["labels_per_class"] for r in rows}):
        for mode in sorted({r["mode"] for r in rows}):
            errors = [r["test_error"] for r in rows if r["labels_per_class"] == labels and r["mode"] == mode]
            if errors:
                out.append({"labels_per_class": labels, "mode": mode, "mean": float(np.mean(errors)),
                            "std": float(np.std(errors)), "n": len(errors)})
    return out
