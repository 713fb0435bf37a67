"""The train stage: launch Ray training, log the val-selected model, curves and samples to MLflow, then write them."""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from ssgan import metrics as M
from ssgan.tracking import runs as tracking
from ssgan.tracking import registry
from ssgan.training.checkpoint import LoadedModel, model_from_payload, payload_bytes
from ssgan.config import Cluster, Config, flatten
from ssgan.data.parquet import check_prepared, describe
from ssgan.driver.cluster import check_local_cpus, check_resources, check_storage, connect, storage_uri
from ssgan.driver import lease
from ssgan.driver.fit import finish_run, fit
from ssgan.driver.nodes import check_nodes
from ssgan.util.fileio import atomic_write_many, csv_bytes
from ssgan.util.images import grid_png, to_uint8
from ssgan.util.plots import curves_png, note_png
from ssgan.tracking.promote import DATA_KEY_TAG, data_key, model_names
from ssgan.quality.measures import FID_CLASSIFIER_VAL
from ssgan.quality.probe import FidClassifierVal
from ssgan.driver.resume import RUN_PREFIX, check_same_run, latest_state, remove_run, run_key
from ssgan.tracking.lineage import MODEL_REQUIREMENTS, record_lineage
from ssgan.tracking.runs import MODEL_MD5_TAG
from ssgan.training.loop import TrainJob



@dataclass(frozen=True)
class TrainOutputs:
    model: Path  # models/model.pt: the model selected on val
    history: Path  # plots/train.csv
    samples: Path  # plots/samples.png
    curves: Path  # plots/curves.png


# A supervised run never trains G: samples of its random init would read as a (terrible) result.
NO_GENERATOR_NOTE = "train.mode: supervised: no generator was trained, so there are no samples"


def sample_grid(generator: torch.nn.Module, rows: int, num_classes: int, seed: int) -> bytes:
    """A conditional G gets one row per class; an unconditional one `rows` rows of `num_classes` samples."""
    rng = torch.Generator().manual_seed(seed)
    if generator.num_classes:
        cols = rows
        rows, y = num_classes, torch.arange(num_classes).repeat_interleave(cols)
    else:
        cols, y = num_classes, None
    latent = generator.sample_latent(rows * cols, generator=rng)
    with torch.no_grad():
        images = generator.eval()(latent, y).numpy()
    return grid_png(to_uint8(images), rows=rows, scale=4 if images.shape[-1] < 16 else 1)


def output_files(cfg: Config, state: dict, model: LoadedModel, outputs: TrainOutputs) -> dict[Path, bytes]:
    """The train stage's files from the final training state and its val-selected model (`model`,
    loaded from state["best"]): the model file, its history, the curves, and G's samples (a note
    instead when G was never trained)."""
    best = state["best"]
    columns = ["epoch", "step", *[m for m in (*M.EPOCH_METRICS, FID_CLASSIFIER_VAL)
                                  if any(m in row for row in state["history"])]]
    samples = (sample_grid(model.generator, cfg.train.sample_rows, model.meta.num_classes, cfg.train.seed)
               if cfg.train.mode == "ssgan" else note_png(NO_GENERATOR_NOTE))
    return {outputs.model: payload_bytes(best), outputs.history: csv_bytes(state["history"], columns),
            outputs.samples: samples, outputs.curves: curves_png(state["history"], best["epoch"], cfg.train.mode)}


def generator_probe(cfg: Config, path: Path | None) -> FidClassifierVal | None:
    """fid_classifier_val during training, from the reference classifier at `path` when there is one."""
    if cfg.quality.every_epochs == 0:
        return None
    if path is None or not Path(path).exists():
        print(f"[ssgan] no reference classifier at {path}: training runs without fid_classifier_val "
              f"(`ssgan reference` makes one)", flush=True)
        return None
    return FidClassifierVal(torch.load(path, map_location="cpu", weights_only=True), cfg.quality.train_samples,
                            cfg.train.seed)


def open_run(cfg: Config, key: str, state: dict | None, tracking_uri: str, artifact_root: Path | None,
             source: str) -> tuple[tracking.RunRef, frozenset[int]]:
    """Continue the MLflow run of an interrupted training (same run key, a checkpoint to resume), else
    open a new one; returns it with the epochs it already holds. Epochs the checkpoint holds but
    MLflow missed (the driver died between the two) are logged from the checkpoint's history; epochs
    MLflow holds beyond the checkpoint (Ctrl-C after the metrics went out, before the checkpoint was
    persisted) are trained again but must not be logged again: every epoch is there exactly once."""
    run = tracking.find_run(tracking_uri, tracking.RUN_KEY_TAG, key)
    status = tracking.run_status(run) if run is not None else None
    if run is not None and (state is None or status == "FINISHED"):
        if status == "RUNNING":
            tracking.end_run(run, "KILLED")  # its driver died before any checkpoint: nothing to continue
        run = None
    if run is None:
        run = tracking.start_run(tracking_uri, f"ssgan-{source}", flatten(cfg), artifact_root, run_name=cfg.train.mode,
                                 tags={"ssgan.mode": cfg.train.mode, tracking.RUN_KEY_TAG: key})
    else:
        tracking.reopen_run(run)
    done: set[int] = set()
    if state is not None:
        done = tracking.logged_epochs(run, M.VAL_ERROR)
        for row in state["history"]:
            if row["epoch"] not in done:
                tracking.log_epoch(run, row)
                done.add(row["epoch"])
        print(f"[ssgan] resuming run {key} from its checkpoint at epoch {state['epoch']} (MLflow run {run.run_id}); "
              f"`ssgan train --restart` starts fresh", flush=True)
    return run, frozenset(done)


def train(cfg: Config, data_dir: Path, outputs: TrainOutputs, tracking_uri: str, artifact_root: Path | None,
          cluster: Cluster, restart: bool = False, reference: Path | None = None,
          lineage: Mapping[str, str] | None = None, code: str = "") -> dict:
    """Train with Ray, log the val-selected model, curves and samples to MLflow, then write them.

    The output files are replaced together at the very end, so a run that fails or is interrupted
    leaves the previous outputs as they were (dvc.yaml marks them `persist`, so DVC keeps them too).
    A rerun of the same configuration after the driver died resumes from the last checkpoint.
    `reference` (models/reference.pt) lets rank 0 score G with fid_classifier_val every
    quality.every_epochs epochs. `lineage` (the git commit and whether the tree was dirty) tags the
    run; the four prepared splits are logged as its MLflow datasets (digest: each file's md5), and
    the classifier and generator are registered as new versions of `ssgan-<source>-...`. `code` (a
    digest of the training code) is part of the run key: changed code never continues an old checkpoint.
    """
    check_prepared(Path(data_dir))  # before resolving, so the error names the path the user gave
    data_dir = Path(data_dir).resolve()
    source = describe(data_dir / "val.parquet")[0]["source"]
    check_local_cpus(cluster, cfg.train.num_workers, cfg.train.use_gpu)  # answered before Ray starts
    storage = storage_uri(cluster.storage_path)
    check_storage(storage)
    key = run_key(cfg, data_dir, code)
    name = f"{RUN_PREFIX}{key}"
    # Held before anything of the run is read or changed: a second process of the same run key (a
    # `dvc exp run --jobs 2` whose experiments differ only outside it) must not mark this one's
    # MLflow run KILLED, resume from its checkpoints or delete them under it.
    with lease.hold(storage, name, f"run key {key} (Ray Train run {name})",
                    "another `ssgan train` of the same params, data and code is running: wait for it to finish"):
        return _train_held(cfg, data_dir, source, outputs, tracking_uri, artifact_root, cluster, storage, key, restart,
                           reference, lineage)


def _train_held(cfg: Config, data_dir: Path, source: str, outputs: TrainOutputs, tracking_uri: str,
                artifact_root: Path | None, cluster: Cluster, storage: str, key: str, restart: bool,
                reference: Path | None, lineage: Mapping[str, str] | None) -> dict:
    name = f"{RUN_PREFIX}{key}"
    if restart:
        remove_run(storage, name)
    state = latest_state(storage, name)
    if state is not None:
        check_same_run(state, key, f"{storage}/{name}")
    connect(cluster)  # fail on missing resources, code or storage before an MLflow run is opened
    check_resources(cfg.train.num_workers, cfg.train.use_gpu, cfg.train.worker_resources())
    check_nodes(storage)
    run, logged = open_run(cfg, key, state, tracking_uri, artifact_root, source)
    try:
        job = TrainJob(cfg, str(data_dir), key, probe=generator_probe(cfg, reference))
        state = fit(job, cluster, name=name, on_epoch=functools.partial(tracking.log_epoch, run, skip=logged))
        best = state["best"]
        model = model_from_payload(best)
        files = output_files(cfg, state, model, outputs)
        trained_g = cfg.train.mode == "ssgan"
        artifacts = (outputs.history, outputs.samples, outputs.curves) if trained_g else (outputs.history, outputs.curves)
        tracking.log_artifact_bytes(run, {p.name: files[p] for p in artifacts})
        uris = registry.log_models(run, model, MODEL_REQUIREMENTS, generator=trained_g)
        # evaluate finds this run by the model file's md5 (the same md5 dvc.lock records for it).
        md5 = hashlib.md5(files[outputs.model]).hexdigest()
        tracking.set_tag(run, MODEL_MD5_TAG, md5)
        val_set = data_key(data_dir)  # md5 of val.parquet: computed once for the tags and the versions
        record_lineage(run, data_dir, source, model, lineage or {}, val_set)
        registry.register_models(run, uris, model_names(source),
                                 {DATA_KEY_TAG: val_set, **(lineage or {}), "ssgan.run_id": run.run_id}, md5)
        atomic_write_many(files)
        finish_run(cluster, name)  # only now: a crash before this resumes from the final checkpoint
    except BaseException as err:
        # Ctrl-C or a failure: the checkpoints stay, and a rerun of this configuration continues this run.
        tracking.end_run(run, "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    tracking.end_run(run)
    return {"run_id": run.run_id, "run_key": key, "best_epoch": best["epoch"], M.VAL_ACCURACY: best["val_accuracy"]}
