"""Throughput and peak memory of the prepare stage, run as DVC runs it (`python -m pipelines.prepare`).

    nice -n 10 python benchmarks/prepare.py            # Fashion-MNIST (Debian files) + 600k generated 32x32x3 IDX
    python benchmarks/prepare.py --n 50000 --skip-fashion

Each prepare runs in its own child process; its peak RSS comes from that child's rusage (os.wait4),
so the figure includes interpreter start-up and imports, as a user would see. The generated set is
written uncompressed: the point is the prepare stage's cost, not gzip's.
"""
from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def generate_idx(directory: Path, n: int, side: int = 32, channels: int = 3, chunk: int = 20000, seed: int = 0) -> None:
    """A `train-*` IDX pair of n images; 8x8 colour blocks upscaled, so they compress like photos rather than noise."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "train-images-idx4-ubyte", "wb") as f:
        f.write(bytes([0, 0, 0x08, 4]) + struct.pack(">4I", n, side, side, channels))
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            blocks = rng.integers(0, 256, (m, side // 4, side // 4, channels), dtype=np.uint8)
            f.write(blocks.repeat(4, axis=1).repeat(4, axis=2).tobytes())
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    (directory / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 0x08, 1]) + struct.pack(">I", n) + labels.tobytes())


def run_prepare(data: dict, work: Path) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, last output line) of one prepare in a child process."""
    work.mkdir(parents=True, exist_ok=True)
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump({"data": data}))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.prepare", "--params", str(params), "--out", str(work / "prepared")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"prepare failed ({proc.returncode}):\n{output}")
    return wall, usage.ru_maxrss * 1024, output.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600_000, help="images in the generated 32x32x3 IDX set")
    parser.add_argument("--skip-fashion", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ssgan-bench-") as tmp:
        tmp = Path(tmp)
        if not args.skip_fashion:
            if not DEBIAN_FASHION.is_dir():
                raise SystemExit(f"{DEBIAN_FASHION}: not found; install dataset-fashion-mnist or pass --skip-fashion")
            wall, rss, line = run_prepare({"source": "fashion_mnist", "n_labeled_per_class": 10}, tmp / "fashion")
            rows.append(("fashion_mnist (Debian .gz)", 70_000, wall, rss, line))
        t0 = time.perf_counter()
        generate_idx(tmp / "gen" / "src", args.n)
        print(f"generated {args.n} images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        wall, rss, line = run_prepare({"source": "idx", "path": str(tmp / "gen" / "src"), "n_labeled_per_class": 10,
                                       "val_size": 5000, "test_size": 10000}, tmp / "gen")
        rows.append(("idx 32x32x3 generated (raw)", args.n, wall, rss, line))
    print("| dataset | images | wall time | images/s | peak RSS |\n|---|---|---|---|---|")
    for name, n, wall, rss, _ in rows:
        print(f"| {name} | {n:,} | {wall:.1f} s | {n / wall:,.0f} | {rss / 2**20:,.0f} MiB |")
    for *_, line in rows:
        print(line, file=sys.stderr)


if __name__ == "__main__":
    main()
