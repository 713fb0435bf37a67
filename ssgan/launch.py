"""The train stage: launch Ray training, log the val-selected model, curves and samples to MLflow, then write them."""
from __future__ import annotations

import functools
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ssgan import metrics as M
from ssgan import tracking
from ssgan.checkpoint import model_from_payload, payload_bytes
from ssgan.config import Cluster, Config, flatten
from ssgan.data.parquet import SPLITS, describe
from ssgan.distributed import RUN_PREFIX, check_local_cpus, check_resources, connect, fit
from ssgan.fileio import atomic_write_many, csv_bytes
from ssgan.images import grid_png, to_uint8
from ssgan.plots import curves_png
from ssgan.tracking import MODEL_MD5_TAG
from ssgan.train import TrainJob

# The MLflow model environment: what loading the logged models needs (and faster than inferring it).
MODEL_REQUIREMENTS = [f"torch=={torch.__version__.split('+')[0]}"]


def check_prepared(data_dir: Path) -> None:
    """Fail before Ray starts if a split is missing or unreadable (the error names the file)."""
    for name in SPLITS:
        describe(Path(data_dir) / f"{name}.parquet")


@dataclass(frozen=True)
class TrainOutputs:
    model: Path  # models/model.pt: the model selected on val
    history: Path  # plots/train.csv
    samples: Path  # plots/samples.png
    curves: Path  # plots/curves.png


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


def train(cfg: Config, data_dir: Path, outputs: TrainOutputs, tracking_uri: str, artifact_root: Path | None,
          cluster: Cluster) -> dict:
    """Train with Ray, log the val-selected model, curves and samples to MLflow, then write them.

    The output files are replaced together at the very end, so a run that fails or is interrupted
    leaves the previous outputs as they were (dvc.yaml marks them `persist`, so DVC keeps them too).
    """
    check_prepared(Path(data_dir))  # before resolving, so the error names the path the user gave
    data_dir = Path(data_dir).resolve()
    source = describe(data_dir / "val.parquet")[0]["source"]
    check_local_cpus(cluster, cfg.train.num_workers, cfg.train.use_gpu)  # answered before Ray starts
    connect(cluster)  # fail on missing resources before an MLflow run is opened
    check_resources(cfg.train.num_workers, cfg.train.use_gpu)
    run = tracking.start_run(tracking_uri, f"ssgan-{source}", flatten(cfg), artifact_root, run_name=cfg.train.mode,
                             tags={"ssgan.mode": cfg.train.mode})
    try:
        state = fit(TrainJob(cfg, str(data_dir)), cluster, name=f"{RUN_PREFIX}{run.run_id}",
                    on_epoch=functools.partial(tracking.log_epoch, run))
        best = state["best"]
        model = model_from_payload(best)
        columns = ["epoch", "step", *[m for m in M.EPOCH_METRICS if m in state["history"][0]]]
        files = {outputs.model: payload_bytes(best),
                 outputs.history: csv_bytes(state["history"], columns),
                 outputs.samples: sample_grid(model.generator, cfg.train.sample_rows, model.meta.num_classes,
                                              cfg.train.seed),
                 outputs.curves: curves_png(state["history"], best["epoch"], cfg.train.mode)}
        with tempfile.TemporaryDirectory(prefix="ssgan-artifacts-") as tmp:
            for path in (outputs.history, outputs.samples, outputs.curves):
                (Path(tmp) / path.name).write_bytes(files[path])
                tracking.log_artifact(run, Path(tmp) / path.name)
        tracking.log_models(run, model, MODEL_REQUIREMENTS)
        # evaluate finds this run by the model file's md5 (the same md5 dvc.lock records for it).
        tracking.set_tag(run, MODEL_MD5_TAG, hashlib.md5(files[outputs.model]).hexdigest())
        atomic_write_many(files)
    except BaseException:
        tracking.end_run(run, "FAILED")
        raise
    tracking.end_run(run)
    return {"run_id": run.run_id, "best_epoch": best["epoch"], M.VAL_ACCURACY: best["val_accuracy"]}
