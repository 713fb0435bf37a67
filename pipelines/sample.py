"""`ssgan sample --model M --n 64 [--class k] --out grid.png`: images from a generator, as a grid or as Parquet."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pipelines import params as P
from pipelines import tracking as T
from ssgan.data.catalog import DataSourceError
from ssgan.util.fileio import atomic_write


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="models/model.pt",
                        help="models:/ssgan-digits-generator@champion, runs:/<id>/generator or a model file (default: %(default)s)")
    parser.add_argument("--n", type=int, default=64, help="images (default: %(default)s)")
    parser.add_argument("--class", dest="label", type=int, default=None, help="class index, for a conditional G")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=("png", "parquet"), default="png", help="a grid PNG or the raw samples")
    parser.add_argument("--out", type=Path, default=Path("samples.png"), help="output file (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    from ssgan.tracking.serving import load_generator

    if args.n < 1:
        raise DataSourceError(f"--n {args.n}: need at least 1 image")
    T.use_project_store(args.model)
    g = load_generator(args.model)
    if args.label is not None and not g.num_classes:
        raise DataSourceError(f"--class {args.label}: {args.model} is an unconditional generator; leave --class out "
                              f"(train with model.conditional_generator: true for class-conditional samples)")
    if args.label is not None and not 0 <= args.label < g.num_classes:
        raise DataSourceError(f"--class {args.label}: outside 0..{g.num_classes - 1}")
    images = g.sample(args.n, args.label, args.seed)
    if args.format == "png":
        from ssgan.util.images import grid_png

        rows = int(np.ceil(np.sqrt(args.n)))
        padded = np.concatenate([images, np.zeros((rows * rows - len(images), *images.shape[1:]), np.uint8)])
        data = grid_png(padded, rows=rows, scale=4 if images.shape[1] < 16 else 1)
    else:
        from ssgan.data.parquet import split_table
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = split_table(images, None, np.arange(len(images)), {"num_classes": g.num_classes or 0, "source": "samples"})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        data = sink.getvalue().to_pybytes()
    atomic_write(args.out, data)
    print(f"[ssgan] {len(images)} samples{'' if args.label is None else f' of class {args.label}'} -> {args.out}")


if __name__ == "__main__":
    from pipelines.cli import main

    main(["sample", *sys.argv[1:]])
