"""Do chosen labels beat random ones? Start from few labels, add a batch chosen by each rule, retrain, compare.

    python benchmarks/active.py                         # digits: 2 labels/class, +2/class, 3 seeds
    python benchmarks/active.py --seeds 5 --epochs 30 --steps 50 --jobs 2

Per seed: prepare `--start` labels per class (data.seed = the seed), train SSGAN in-process, then let
each rule pick `--add` x K images of the unlabeled split: `random` (seeded), and `entropy`,
`margin`, `fake` from the trained classifier (ssgan.active.suggest: the rules `ssgan suggest` uses). The
picked images get the source's own labels (a perfect annotator), go through `data.extra_labels`
and `prepare` exactly as `ssgan add-labels` would, and SSGAN is retrained from scratch with the same
seed. Selection is on val; test is scored once per model. Prints each rule's mean val error, mean ±
std test error and difference from random, seed by seed (a paired comparison), and the rule with the
lowest mean val error: the one `ssgan suggest` uses by default.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RULES = ("random", "entropy", "margin", "fake")


def _train(params: dict, data_dir: str) -> dict:
    """Train in this (child) process; the val-selected model's test error and its logits on the unlabeled split."""
    import contextlib
    import io

    import torch

    from ssgan import metrics as M
    from ssgan.active.suggest import unlabeled_rows
    from ssgan.training.checkpoint import model_from_payload
    from ssgan.config import from_mapping
    from ssgan.data.parquet import read_split
    from ssgan.tracking.serving import Classifier
    from ssgan.training.loop import LocalSession, TrainJob, run_training

    torch.set_num_threads(1)
    session = LocalSession()
    with contextlib.redirect_stdout(io.StringIO()):
        run_training(TrainJob(from_mapping(params), data_dir), session)
    model = model_from_payload(session.state["best"])
    test = read_split(Path(data_dir) / "test.parquet")
    images, row_ids = unlabeled_rows(Path(data_dir))
    with torch.no_grad():
        logits = Classifier(model.discriminator).eval()(torch.from_numpy(images)).numpy()
    return {"test_error": 1.0 - M.accuracy(M.predict(model.discriminator, test.images), test.labels),
            "val_error": 1.0 - model.val_accuracy, "logits": logits, "row_ids": row_ids}


def _prepare(params: dict, out: Path) -> None:
    from ssgan.config import from_mapping
    from ssgan.data.prepare import prepare

    prepare(from_mapping(params, ("data",)).data, out)


def pick(rule: str, base: dict, n: int, seed: int) -> np.ndarray:
    from ssgan.active.suggest import rank_unlabeled

    if rule == "random":
        return np.random.default_rng([seed, 7]).choice(base["row_ids"], n, replace=False)
    order, _ = rank_unlabeled(base["logits"], base["row_ids"], rule, n)
    return base["row_ids"][order]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--start", type=int, default=2, help="labels per class to start from (default: 2)")
    parser.add_argument("--add", type=int, default=2, help="labels per class each rule adds (default: 2)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=50, help="steps per epoch")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once, one CPU thread each")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise SystemExit("active: --seeds must be >= 1")

    from ssgan.data import sources
    from ssgan.config import from_mapping

    params = yaml.safe_load(Path(args.params).read_text())
    params = {k: v for k, v in params.items() if k in ("data", "model", "train")}
    params["data"] = {**params["data"], "n_labeled_per_class": args.start, "n_labeled": None}
    params["train"] = {**params["train"], "epochs": args.epochs, "steps_per_epoch": args.steps, "num_workers": 1,
                       "mode": "ssgan"}
    source_labels = sources.load(from_mapping(params, ("data",)).data).labels  # the perfect annotator
    start = time.time()
    results: dict[tuple[str, int], float] = {}
    val: dict[tuple[str, int], float] = {}
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="ssgan-active-") as tmp, cf.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
        runs = {}
        for seed in range(args.seeds):
            p = {**params, "data": {**params["data"], "seed": seed}, "train": {**params["train"], "seed": seed}}
            _prepare(p, Path(tmp) / f"base{seed}")
            runs[seed] = (p, pool.submit(_train, p, str(Path(tmp) / f"base{seed}")))
        retrain = {}
        for seed, (p, future) in runs.items():
            base = future.result()
            results["start", seed], val["start", seed] = base["test_error"], base["val_error"]
            k = int(base["logits"].shape[1])
            for rule in RULES:
                rows = pick(rule, base, args.add * k, seed)
                csv_path = Path(tmp) / f"labels-{rule}-{seed}.csv"
                csv_path.write_text("row_id,label\n" + "".join(f"{r},{source_labels[r]}\n" for r in rows))
                q = {**p, "data": {**p["data"], "extra_labels": str(csv_path)}}
                out = Path(tmp) / f"{rule}{seed}"
                _prepare(q, out)
                retrain[rule, seed] = pool.submit(_train, q, str(out))
            print(f"  seed {seed}: start {base['test_error']:.4f}; retraining {len(RULES)} rules", file=sys.stderr, flush=True)
        for (rule, seed), future in retrain.items():
            done = future.result()
            results[rule, seed], val[rule, seed] = done["test_error"], done["val_error"]
    print(f"\nactive learning on {params['data']['source']}: {args.start} labels/class, +{args.add}/class by each rule, "
          f"SSGAN {args.epochs} x {args.steps} steps, {args.seeds} seeds; {time.time() - start:.0f} s\n")
    print("| rule | val error (mean) | test error (mean ± std) | per seed | minus random (mean, per seed) |")
    print("|---|---|---|---|---|")
    for rule in ("start", *RULES):
        errors = [results[rule, s] for s in range(args.seeds)]
        diffs = [results[rule, s] - results["random", s] for s in range(args.seeds)]
        std = statistics.stdev(errors) if len(errors) > 1 else 0.0
        vs = "" if rule in ("start", "random") else f"{statistics.mean(diffs):+.4f} ({', '.join(f'{d:+.4f}' for d in diffs)})"
        mean_val = statistics.mean(val[rule, s] for s in range(args.seeds))
        print(f"| {rule} | {mean_val:.4f} | {statistics.mean(errors):.4f} ± {std:.4f} | {', '.join(f'{e:.4f}' for e in errors)} | {vs} |")
    # The val split is the same for every rule (extra labels come from the unlabeled split): compare there.
    chosen = min(RULES, key=lambda r: statistics.mean(val[r, s] for s in range(args.seeds)))
    print(f"\nchosen on val (lowest mean val error): {chosen}")


if __name__ == "__main__":
    main()
