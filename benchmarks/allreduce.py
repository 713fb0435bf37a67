"""What one DDP step's gradient all-reduces cost on this machine: two gloo processes, one thread each.

    python benchmarks/allreduce.py --params benchmarks/params/fashion_mnist_100.yaml

All-reduces tensors of D's and G's parameter counts (as DDP does once per step for each model,
in buckets of 25 MB or less) and prints milliseconds per step, the median over `--reps`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _sizes(params_path: str) -> dict[str, int]:
    from ssgan.config import from_mapping
    from ssgan.training.models import build_models

    cfg = from_mapping(yaml.safe_load(Path(params_path).read_text()))
    shape = {"digits": (1, 8, 8)}.get(cfg.data.source, (1, 28, 28))
    d, g = build_models(cfg.model, shape, 10)
    return {"D": sum(p.numel() for p in d.parameters()), "G": sum(p.numel() for p in g.parameters())}


def _rank(rank: int, init: str, sizes: dict[str, int], reps: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=2)
    tensors = {name: torch.randn(n) for name, n in sizes.items()}
    times = []
    for _ in range(reps + 3):
        dist.barrier()
        start = time.perf_counter()
        for t in tensors.values():
            dist.all_reduce(t)
        times.append(time.perf_counter() - start)
    if rank == 0:
        Path(out).write_text(f"{1000 * statistics.median(times[3:]):.2f}")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    sizes = _sizes(args.params)
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "ms")
        mp.spawn(_rank, args=(str(Path(tmp) / "init"), sizes, args.reps, out), nprocs=2, join=True)
        ms = Path(out).read_text()
    mb = 4 * sum(sizes.values()) / 1e6
    print(f"{args.params}: D {sizes['D']:,} + G {sizes['G']:,} parameters ({mb:.1f} MB float32): "
          f"{ms} ms per step for both all-reduces (2 gloo ranks, 1 thread each)")


if __name__ == "__main__":
    main()
