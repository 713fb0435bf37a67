"""A sweep's trials in MLflow: one child run per trial under the sweep's parent, written on the driver.

`TrialLog` is driven by Tune's callback hooks (ssgan.sweep.tuner wraps it in a `ray.tune.Callback`, which
Tune calls in the driver process) and knows nothing of Ray. A trial's child run is found again by
its tag after the driver restarts (`ssgan tune --resume`), and an epoch already logged is never
logged twice: a trial restarted from its checkpoint reports its later epochs again.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ssgan import metrics as M
from ssgan.tracking import runs as tracking
from ssgan.quality.measures import FID_CLASSIFIER_VAL
from ssgan.tracking.runs import RunRef

SWEEP_TAG = "ssgan.sweep"  # on the parent alone (it is how `--resume` finds it): the sweep's name
TRIAL_TAG = "ssgan.trial"  # on a child: "<sweep>/<Tune trial id>"
OVERRIDES_TAG = "ssgan.overrides"  # on a child: the trial's searched values, as JSON
STOPPED_TAG = "ssgan.stopped_by"  # on a child the scheduler stopped: "asha at epoch N"


@dataclass
class TrialLog:
    parent: RunRef
    sweep: str
    max_epochs: int
    scheduler: str
    artifact_root: Path | None
    # overrides -> the trial's flattened params (what its child run records)
    trial_params: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    metric: str = M.VAL_ERROR
    runs: dict[str, RunRef] = field(default_factory=dict)
    logged: dict[str, set[int]] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)

    def run(self, trial_id: str, overrides: Mapping[str, Any]) -> RunRef:
        """The trial's child run: found by its tag (continued after a restart) or created."""
        if trial_id in self.runs:
            return self.runs[trial_id]
        tag = f"{self.sweep}/{trial_id}"
        ref = tracking.find_run(self.parent.tracking_uri, TRIAL_TAG, tag)
        if ref is None:
            ref = tracking.start_run(self.parent.tracking_uri, self.parent.experiment_name, self.trial_params(overrides),
                                     self.artifact_root, run_name=f"trial {trial_id}",
                                     tags={"mlflow.parentRunId": self.parent.run_id, TRIAL_TAG: tag, OVERRIDES_TAG: json.dumps(dict(overrides), sort_keys=True)})
            self.logged[trial_id] = set()
        else:
            if tracking.run_status(ref) != "RUNNING":
                tracking.reopen_run(ref)
            self.logged[trial_id] = tracking.logged_epochs(ref, M.VAL_ERROR)
        self.runs[trial_id] = ref
        self.started.setdefault(trial_id, time.time())
        return ref

    def result(self, trial_id: str, overrides: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        if M.TEST_ERROR in result and "epoch" not in result:
            # A label curve's last report: the val-selected model's scores, at its epoch.
            ref = self.run(trial_id, overrides)
            tracking.log_metrics(ref, {M.TEST_ERROR: result[M.TEST_ERROR]}, step=int(result.get(M.BEST_EPOCH, 0)))
            tracking.set_tag(ref, "ssgan.selected_val_error", f"{result[M.VAL_ERROR]:.6f}")
            return
        if "epoch" not in result:
            return
        ref, epoch = self.run(trial_id, overrides), int(result["epoch"])
        if epoch in self.logged[trial_id]:
            return  # repeated after a restart from an earlier checkpoint
        tracking.log_epoch(ref, {k: result[k] for k in ("epoch", "step", *M.EPOCH_METRICS, FID_CLASSIFIER_VAL) if k in result})
        self.logged[trial_id].add(epoch)

    def complete(self, trial_id: str, overrides: Mapping[str, Any], last: Mapping[str, Any] | None) -> str:
        """FINISHED when the trial ran every epoch, else KILLED with the scheduler's decision as a tag."""
        ref = self.run(trial_id, overrides)
        epochs = max(self.logged[trial_id], default=0)
        if epochs >= self.max_epochs:
            status, how = "FINISHED", "finished"
        else:
            status, how = "KILLED", f"stopped by {self.scheduler} at epoch {epochs}"
            tracking.set_tag(ref, STOPPED_TAG, f"{self.scheduler} at epoch {epochs}")
        tracking.end_run(ref, status)
        self._progress(trial_id, overrides, how, last, epochs)
        return status

    def error(self, trial_id: str, overrides: Mapping[str, Any], message: str) -> None:
        ref = self.run(trial_id, overrides)
        tracking.set_tag(ref, "ssgan.error", message[:5000])
        tracking.end_run(ref, "FAILED")
        self._progress(trial_id, overrides, f"failed: {message.strip().splitlines()[-1] if message.strip() else ''}",
                       None, max(self.logged[trial_id], default=0))

    def _progress(self, trial_id: str, overrides: Mapping[str, Any], how: str, last: Mapping[str, Any] | None,
                  epochs: int) -> None:
        values = " ".join(f"{k}={v}" for k, v in overrides.items())
        score = f" {self.metric}={last[self.metric]:.4f}" if last and self.metric in last else ""
        seconds = time.time() - self.started.get(trial_id, time.time())
        print(f"[ssgan] trial {trial_id} {how}: {values}{score} epochs {epochs}/{self.max_epochs} ({seconds:.0f} s)",
              flush=True)
