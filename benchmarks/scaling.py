"""Data-parallel scaling: samples/s and time to the first epoch for in-process, 2 DDP processes without Ray, Ray 1 and 2 workers.

    python benchmarks/scaling.py                                                    # digits MLP (params.yaml)
    python benchmarks/scaling.py --params benchmarks/params/fashion_mnist_100.yaml --steps 40

Every arm runs the same per-worker loop (`ssgan.training.loop.run_training`) with the same per-worker batch
(`train.batch_size` labeled + as many unlabeled images), one CPU thread per worker, for `--epochs`
epochs of `--steps` steps. samples/s counts the images of all workers (2 x batch x workers per
step) over the steady epochs (all but the first); "first epoch" is the time from the start of the
run (after Ray itself is up, which is timed once, on its own) to the first epoch's report, so it
holds the per-run start-up. Ratios: Ray 1 worker against in-process, Ray 2 workers against Ray 1, and
2 plain torch.distributed (gloo) processes against in-process: the same DDP step without Ray, which
separates what the second worker costs in DDP and gloo from what it costs in Ray.
Epoch times are taken where the reports arrive: the in-process session, or the driver-side Ray
Train callback (the same seam that logs to MLflow).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _record(path: str, metrics: dict) -> None:
    """Runs in Ray's Train controller: append (epoch, wall time) to a file the benchmark reads."""
    with open(path, "a") as f:
        f.write(f"{int(metrics['epoch'])} {time.time()}\n")


def _summarise(name: str, start: float, epoch_times: list[float], steps: int, batch: int, workers: int) -> dict:
    durations = [b - a for a, b in zip(epoch_times, epoch_times[1:])]
    step_s = statistics.median(durations) / steps
    return {"arm": name, "workers": workers, "first_epoch_s": epoch_times[0] - start,
            "ms_per_step": 1000 * step_s, "samples_per_s": 2 * batch * workers / step_s}


def in_process(cfg, data_dir: str) -> dict:
    import torch

    from ssgan.training.loop import LocalSession, TrainJob, run_training

    torch.set_num_threads(1)
    times: list[float] = []

    class Timed(LocalSession):
        def report(self, metrics, checkpoint_dir):
            times.append(time.time())
            super().report(metrics, checkpoint_dir)

    start = time.time()
    run_training(TrainJob(cfg, data_dir), Timed())
    return _summarise("in-process", start, times, cfg.train.steps_per_epoch, cfg.train.batch_size, 1)


def _ddp_worker(rank: int, world: int, init_file: str, cfg, data_dir: str, log: str) -> None:
    """One rank of the no-Ray arm: gloo through a file, DDP as Ray's prepare_model wraps it on the CPU."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from ssgan.training.loop import LocalSession, TrainJob, run_training

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)

    class DDPSession(LocalSession):
        def __init__(self) -> None:
            super().__init__("cpu")
            self.rank, self.world_size = rank, world

        def prepare_model(self, model):
            return DistributedDataParallel(model)

        def report(self, metrics, checkpoint_dir):
            if rank == 0:
                _record(log, metrics)

    try:
        run_training(TrainJob(cfg, data_dir), DDPSession())
    finally:
        dist.destroy_process_group()


def torch_ddp(cfg, data_dir: str, workers: int, tmp: Path) -> dict:
    import torch.multiprocessing as mp

    log, init_file = tmp / f"ddp-epochs-{workers}.txt", tmp / f"ddp-init-{workers}"
    start = time.time()
    mp.spawn(_ddp_worker, args=(workers, str(init_file), cfg, data_dir, str(log)), nprocs=workers)
    times = [float(line.split()[1]) for line in log.read_text().splitlines()]
    return _summarise(f"torch.distributed, {workers} processes (no Ray)", start, times, cfg.train.steps_per_epoch,
                      cfg.train.batch_size, workers)


def on_ray(cfg, data_dir: str, workers: int, storage: Path) -> dict:
    from ssgan.config import Cluster
    from ssgan.driver.fit import fit
    from ssgan.training.loop import TrainJob

    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_workers=workers))
    log = storage / f"epochs-{workers}.txt"
    start = time.time()
    fit(TrainJob(cfg, data_dir), Cluster(storage_path=str(storage)), name=f"ssgan-scaling-{workers}",
        on_epoch=functools.partial(_record, str(log)))
    times = [float(line.split()[1]) for line in log.read_text().splitlines()]
    return _summarise(f"Ray, {workers} worker(s)", start, times, cfg.train.steps_per_epoch, cfg.train.batch_size, workers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--epochs", type=int, default=4, help="epochs per arm; the first is start-up (default: 4)")
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch (default: 100)")
    args = parser.parse_args(argv)

    from ssgan.config import Cluster, from_mapping
    from ssgan.data.prepare import prepare
    from ssgan.driver.cluster import connect

    params = yaml.safe_load(Path(args.params).read_text())
    cfg = from_mapping(params)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=args.epochs, steps_per_epoch=args.steps,
                                                             checkpoint_every=1, max_failures=0))
    with tempfile.TemporaryDirectory(prefix="ssgan-scaling-") as tmp:
        data_dir = str(Path(tmp) / "prepared")
        prepare(cfg.data, Path(data_dir))
        rows = [in_process(cfg, data_dir), torch_ddp(cfg, data_dir, 2, Path(tmp))]
        t = time.time()
        connect(Cluster())
        ray_init_s = time.time() - t
        rows += [on_ray(cfg, data_dir, workers, Path(tmp) / "ray") for workers in (1, 2)]
        import ray  # only now: connect() sets Ray's auth mode, which Ray reads once, at import

        ray.shutdown()
    base, one = rows[0]["samples_per_s"], rows[2]["samples_per_s"]
    print(f"\n{args.params}: {cfg.data.source}, D {list(cfg.model.d_hidden)}, G {list(cfg.model.g_hidden)}, "
          f"batch {cfg.train.batch_size} per worker, {args.epochs} x {args.steps} steps; ray.init {ray_init_s:.1f} s\n")
    print("| arm | ms / step | samples/s | ratio | first epoch (s) |")
    print("|---|---|---|---|---|")
    ratios = ("", f"{rows[1]['samples_per_s'] / base:.2f} x in-process", f"{one / base:.2f} x in-process",
              f"{rows[3]['samples_per_s'] / one:.2f} x Ray 1 worker")
    for row, label in zip(rows, ratios):
        print(f"| {row['arm']} | {row['ms_per_step']:.1f} | {row['samples_per_s']:.0f} | {label} | "
              f"{row['first_epoch_s']:.1f} |")


if __name__ == "__main__":
    main()
