"""`ssgan curve` (and curve/dvc.yaml, outside the default `dvc repro`): params `data`, `model`, `train`,
`curve` -> plots/label_curve.csv and .png: test error against labels per class, SSGAN and supervised, over seeds."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipelines import params as P
from pipelines import tracking as T
from ssgan.sweep.curve import CurveOutputs, curve, summary

OUTPUTS = CurveOutputs(csv=Path("plots/label_curve.csv"), png=Path("plots/label_curve.png"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=P.DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--name", default=None, help="run name (default: curve-<hash of the params>)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted curve: finished runs are not rerun")


def run(args: argparse.Namespace) -> None:
    if args.name is not None:  # before anything is read: the name becomes a folder that is later deleted
        from ssgan.util.names import check_name

        check_name(args.name, "curve --name")
    params = P.load_params(args.params)
    P.load_config(args.params, ("data", "model", "train"))
    root = P.project_root()
    start = time.time()
    rows = curve(params, OUTPUTS, root / "data" / "curve", T.tracking_uri(root), T.artifact_root(root), P.cluster(root),
                 name=args.name, resume=args.resume)
    print(f"[ssgan] label curve: {len(rows)} runs in {time.time() - start:.0f} s -> {OUTPUTS.csv}, {OUTPUTS.png}")
    for s in summary(rows):
        print(f"  {s['labels_per_class']:>4} labels/class  {s['mode']:<10} test_error {s['mean']:.4f} ± {s['std']:.4f} (n={s['n']})")


if __name__ == "__main__":
    from pipelines.cli import main

    main(["curve", *sys.argv[1:]])
