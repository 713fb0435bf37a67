"""Model registry promotion: the classifier version with the lowest val error for its data becomes champion.

Scheme. The train stage registers two versions per run: `ssgan-<source>-classifier` and
`ssgan-<source>-generator`, each tagged with the run's data key: its val set's identity
(`ssgan.data.identity.val_key`, e.g. digits-val200-3f2a9c01b7e4). Versions are only compared when
their val errors were measured on byte-identical val images; so a model trained after `ssgan
add-labels` (same val set, more labels) must beat the champion it replaces, while another split
seed, test size or dataset starts its own line. For each key the
champion carries the alias `champion-<data key>`; the plain alias `champion` follows the most
recent promotion, so `models:/ssgan-digits-classifier@champion` is the model of the data last
promoted, and `@champion-<key>` names one data key's explicitly. A version that loses gets
`challenger` (and `challenger-<key>`). The generator's aliases follow its run's classifier.
Decisions read val error only; test error is shown, never used.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ssgan import metrics as M
from ssgan.tracking import runs as tracking
from ssgan.tracking import registry
from ssgan.data.identity import val_key

CHAMPION, CHALLENGER = "champion", "challenger"
DATA_KEY_TAG = "ssgan.data_key"


class PromotionError(RuntimeError):
    """Nothing to promote: no run or no registered version for the model file."""


def model_names(source: str) -> dict[str, str]:
    return {"classifier": f"ssgan-{source}-classifier", "generator": f"ssgan-{source}-generator"}


def data_key(data_dir: Path) -> str:
    """What makes two runs' val errors comparable: their val files are byte-identical (ssgan.data.identity)."""
    return val_key(data_dir)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(new_val_error: float, champion_val_error: float | None, force: bool) -> Decision:
    """Pure: promote on a strictly lower val error than the same data's champion, or with no champion."""
    if force:
        return Decision(True, "--force")
    if champion_val_error is None:
        return Decision(True, "first version for this data")
    if new_val_error < champion_val_error:
        return Decision(True, f"val_error {new_val_error:.4f} < champion's {champion_val_error:.4f}")
    return Decision(False, f"val_error {new_val_error:.4f} >= champion's {champion_val_error:.4f}")


def selected_val_error(ref: tracking.RunRef) -> float:
    """The val error of the model a run selected: its lowest (selection keeps the best val accuracy)."""
    history = tracking.metric_history(ref, M.VAL_ERROR)
    if not history:
        raise PromotionError(f"MLflow run {ref.run_id} has no {M.VAL_ERROR}")
    return min(history.values())


def promote(model_path: Path, tracking_uri: str, force: bool = False) -> dict[str, Any]:
    """Set the aliases for the run that wrote `model_path` (found by its md5 tag); returns the decision."""
    md5 = hashlib.md5(Path(model_path).read_bytes()).hexdigest()
    run = tracking.find_run(tracking_uri, tracking.MODEL_MD5_TAG, md5)
    if run is None:
        raise PromotionError(f"{model_path}: no MLflow run in {tracking_uri} wrote it; run `dvc repro` (or `ssgan train`)")
    tags = tracking.run_tags(run)
    key, source = tags.get(DATA_KEY_TAG), tags.get("ssgan.source")
    names = model_names(source or "")
    # By the model file's md5: a rerun that reproduced a registered model reuses its version.
    versions = {n: v for n in names.values() if (v := registry.versions_with_md5(tracking_uri, n, md5)) is not None}
    if key is None or names["classifier"] not in versions:
        raise PromotionError(f"MLflow run {run.run_id} registered no {names['classifier']} version; retrain it with `ssgan train`")
    with promotion_lock(tracking_uri, names["classifier"]):
        return _decide_and_alias(run, tags, key, source, names, versions, tracking_uri, force)


@contextmanager
def promotion_lock(tracking_uri: str, name: str) -> Iterator[None]:
    """Reading the champion and moving its alias is one step: two concurrent promotions must not both
    win. A local store (sqlite:///, a folder) is locked by a file beside it; a tracking server has no
    lock to take, so there the step is as atomic as the server makes it (docs/registry.md)."""
    import fcntl

    local = tracking_uri.removeprefix("sqlite:///").removeprefix("file://") if tracking_uri.startswith(("sqlite:///", "file:")) else None
    if local is None or "://" in local:
        yield
        return
    lock = Path(local).with_name(f"{Path(local).name}.promote-{name}.lock")
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _decide_and_alias(run, tags, key, source, names, versions, tracking_uri, force) -> dict[str, Any]:
    new_val = selected_val_error(run)
    test = tracking.metric_history(run, M.TEST_ERROR)
    champion = registry.version_by_alias(tracking_uri, names["classifier"], f"{CHAMPION}-{key}")
    if champion is not None and champion["version"] == versions[names["classifier"]]:
        return {"promoted": True, "already": True, "version": champion["version"], "data_key": key, "name": names["classifier"],
                "reason": "already the champion", "val_error": new_val}
    champion_val = selected_val_error(tracking.run_ref(tracking_uri, champion["run_id"])) if champion else None
    decision = decide(new_val, champion_val, force)
    alias = CHAMPION if decision.promote else CHALLENGER
    for kind, name in names.items():
        if name in versions:
            registry.set_version_aliases(tracking_uri, name, versions[name], [alias, f"{alias}-{key}"])
    test_text = f", test error {next(iter(test.values())):.4f}" if test else ""
    commit = tags.get("ssgan.git_commit", "unknown") + (" (dirty)" if tags.get("ssgan.git_dirty") == "true" else "")
    labels = f"{tags['ssgan.labels']} labels" if "ssgan.labels" in tags else "labels unknown"
    description = (f"{source}, {labels} ({key}); val error {new_val:.4f}{test_text}; commit {commit}; "
                   f"MLflow run {run.run_id}")
    registry.tag_version(tracking_uri, names["classifier"], versions[names["classifier"]],
                         {"ssgan.val_error": f"{new_val:.6f}", "ssgan.promotion": decision.reason}, description)
    return {"promoted": decision.promote, "already": False, "version": versions[names["classifier"]], "data_key": key,
            "reason": decision.reason, "val_error": new_val, "champion_version": champion["version"] if champion else None,
            "champion_val_error": champion_val, "name": names["classifier"], "forced": force}
