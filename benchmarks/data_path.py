"""The data path into the training step: how fast each way gets a rank its images, and what it costs a step.

    python benchmarks/data_path.py                          # the digits default and a 600,000-image pool
    python benchmarks/data_path.py --pool 0 --steps 100     # the digits default only

Three ways two ranks get their unlabeled images, each rank a Ray task on this machine as a Ray
Train worker would be:
- `local read`: each rank reads its shard of the Parquet file by path (what workers did before
  the splits travelled through Ray; it needs the driver's disk on every node);
- `object store` (the default, `train.stream_unlabeled: false`): the driver reads the splits and
  `ray.put`s one shard per rank; each rank `ray.get`s its shard (zero-copy on this node) and checks
  its content digest;
- `stream` (`train.stream_unlabeled: true`): Ray Data `read_parquet` on the driver's node,
  `streaming_split(2)`, a 10,000-row local shuffle per pass.
For each: `setup s` (driver work + the slower rank's time until it holds its first batch), then
the images (labeled + unlabeled, as float tensors ready for the step) the two ranks draw per
second after it (a stream's later passes restart inside this), and `% of a step`: the time to draw one batch over the time of one SSGAN training step
(params.yaml's model at that image shape, benchmarks/step_speed.py's timing) on this machine.
The pool is synthetic (28x28 images made of a few strokes, so they compress like real ones).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
WAYS = ("local read", "object store", "stream")


def synthetic_prepared(out: Path, pool: int, seed: int = 0) -> Path:
    """labeled (100), val and test (1,000 each) and an unlabeled pool of `pool` 28x28 images, written as prepare does."""
    from ssgan.data.parquet import SplitWriter

    rng = np.random.default_rng(seed)
    meta = {"num_classes": 10, "class_names": [str(i) for i in range(10)], "source": "synthetic", "seed": seed}
    out.mkdir(parents=True)
    for name, rows, labels in (("labeled", 100, True), ("val", 1000, True), ("test", 1000, True), ("unlabeled", pool, False)):
        writer = SplitWriter(out / f"{name}.parquet", (28, 28, 1), labels, meta)
        for start in range(0, rows, 50_000):
            n = min(50_000, rows - start)
            images = np.zeros((n, 28, 28, 1), np.uint8)
            rows_at, cols_at = rng.integers(4, 24, (2, n, 3))
            for k in range(3):  # three short strokes per image
                images[np.arange(n), rows_at[:, k], :, 0] = 200
                images[np.arange(n), :, cols_at[:, k], 0] |= 120
            writer.append(images, rng.integers(0, 10, n) if labels else None, np.arange(start, start + n))
        writer.close()
    return out


def rank_read(source, rank: int, world: int, batch_size: int, steps: int) -> tuple[float, float]:
    """(seconds until the first batch can be drawn, seconds to draw `steps` batches) on one rank."""
    import torch

    from ssgan.training.batches import batch_stream

    torch.set_num_threads(1)
    start = time.perf_counter()
    data = source.worker_data(rank, world)
    batches = batch_stream(data, batch_size, np.random.default_rng([0, rank]), torch.device("cpu"))
    next(batches)  # a stream starts its first pass here
    ready = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return ready, time.perf_counter() - start


class StreamRank:
    """What a Ray Train rank's dataset shard is, for a plain Ray task: one split of `streaming_split`."""

    def __init__(self, iterator, meta: dict, shuffle: int) -> None:
        self.iterator, self.meta, self.shuffle = iterator, meta, shuffle

    def passes(self, batch_size: int, seed: int):
        from ssgan.data.parquet import decode_images

        from ssgan.driver.data_refs import PREFETCH_BATCHES

        for batch in self.iterator.iter_batches(batch_size=batch_size, batch_format="pyarrow", drop_last=True,
                                                local_shuffle_buffer_size=self.shuffle, local_shuffle_seed=seed,
                                                prefetch_batches=PREFETCH_BATCHES):
            yield decode_images(batch, self.meta)


def measure(way: str, data_dir: Path, batch_size: int, steps: int) -> dict:
    import ray

    from ssgan.driver.data_refs import fetch, ship_splits, stream_splits
    from ssgan.training.batches import SplitFiles, WorkerData

    from ssgan.driver.fit import STREAM_WORKER_CPU

    # As a training's CPU workers hold while the pool streams: Ray Data's read tasks need the rest.
    task = ray.remote(num_cpus=STREAM_WORKER_CPU)(rank_read)
    start = time.perf_counter()
    if way == "local read":
        sources = [SplitFiles(str(data_dir))] * 2
    elif way == "object store":
        shipped = ship_splits(data_dir, 2)
        sources = [shipped] * 2
    else:
        streamed = stream_splits(data_dir)
        iterators = streamed.dataset.streaming_split(2, equal=True)

        @dataclasses.dataclass(frozen=True)
        class Streamed:
            labeled: object
            rank_stream: StreamRank
            total: int

            def worker_data(self, rank, world):
                return WorkerData.of(fetch(self.labeled, copy=True), None, self.total, self.rank_stream)

        sources = [Streamed(streamed.labeled, StreamRank(it, streamed.meta, streamed.shuffle_buffer), streamed.unlabeled_total)
                   for it in iterators]
    driver = time.perf_counter() - start
    results = ray.get([task.remote(sources[r], r, 2, batch_size, steps) for r in range(2)])
    ready = driver + max(r[0] for r in results)
    draw = max(r[1] for r in results) / steps
    return {"setup_s": ready, "batch_ms": draw * 1e3, "images_per_s": 2 * batch_size / draw}


def step_ms(params: dict, shape: tuple[int, int, int]) -> float:
    import step_speed

    from ssgan.config import from_mapping

    cfg = from_mapping(params)
    result = step_speed.time_steps(cfg, "ssgan", shape, "cpu", steps=30, warmup=5)
    return float(result["ms_per_step"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--pool", type=int, default=600_000, help="synthetic pool size (0: the digits default only)")
    parser.add_argument("--steps", type=int, default=300, help="batches each rank draws per way")
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS)
    args = parser.parse_args(argv)

    import ray
    import torch

    from ssgan.config import from_mapping
    from ssgan.data.prepare import prepare

    torch.set_num_threads(1)
    params = yaml.safe_load(args.params.read_text())
    batch = from_mapping(params).train.batch_size
    rows = []
    with tempfile.TemporaryDirectory(prefix="ssgan-data-path-") as tmp:
        prepare(from_mapping(params).data, Path(tmp) / "digits")
        sets = {"digits (params.yaml)": Path(tmp) / "digits"}
        if args.pool:
            print(f"[data_path] writing a synthetic pool of {args.pool:,} images ...", flush=True)
            sets[f"synthetic {args.pool:,} x 28x28"] = synthetic_prepared(Path(tmp) / "pool", args.pool)
        # The rank function lives in this script: workers import it (as the tests do) from benchmarks/.
        paths = os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT), os.environ.get("PYTHONPATH", "")])
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": paths}})
        try:
            for name, data_dir in sets.items():
                from ssgan.data.parquet import describe

                h, w, c = describe(data_dir / "labeled.parquet")[0]["shape"]
                ms = step_ms(params, (c, h, w))
                for way in args.ways:
                    print(f"[data_path] {name}: {way} ...", flush=True)
                    r = measure(way, data_dir, batch, args.steps)
                    rows.append((name, way, r["setup_s"], r["images_per_s"], r["batch_ms"], ms, 100 * r["batch_ms"] / ms))
        finally:
            ray.shutdown()
    print(f"\nbatch {batch} labeled + {batch} unlabeled per rank, 2 ranks, {args.steps} batches each; "
          f"step: params.yaml's model, SSGAN, CPU, 1 thread")
    print("| data | way | setup s | images/s per rank pair | ms per batch | ms per step | % of a step |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, way, setup, ips, bms, ms, share in rows:
        print(f"| {name} | {way} | {setup:.2f} | {ips:,.0f} | {bms:.3f} | {ms:.2f} | {share:.1f} |")


if __name__ == "__main__":
    main()
