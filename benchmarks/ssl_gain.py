"""SSL gain: SSGAN vs the supervised-only baseline (same D, optimizer, noise, steps) over N seeds, each
with and without D's unlabeled-data terms (consistency, teacher targets, pseudo-labels, views, VAT,
entropy): up to four arms.

    python benchmarks/ssl_gain.py --seeds 3 --set train.batch_size=200      # digits-50, params.yaml's model
    python benchmarks/ssl_gain.py --params benchmarks/params/fashion_mnist_100.yaml
    python benchmarks/ssl_gain.py --term train.consistency_weight=0.1 --arms ssgan+term,supervised+term
    python benchmarks/ssl_gain.py --term train.consistency_target=teacher --term train.pseudo_label_weight=1 \
        --term train.augment=true --arms ssgan+term,supervised+term      # Mean Teacher + FixMatch on D, with and without G

The arms: `supervised` and `ssgan` run with every term weight set to 0 and train.augment off (the faithful recipe);
`supervised+term` and `ssgan+term` run with the terms of the params file and `--term` overrides.
The +term arms run only when some term is on. Same labels, net, optimizer and steps in every arm.

Each (seed, mode) trains in its own process with one CPU thread (the in-process `LocalSession`:
one worker, no Ray start-up), on the CPU or with `--device cuda` on a GPU, is selected on val
and scored on test. The seed sets both the labeled subset (data.seed) and the training randomness
(train.seed); `--first-seed` extends an earlier study with new seeds. Each run prints one progress line
per epoch to stderr; at the end comes a table: mean ± std test error and mean selected val error per
arm, per-seed numbers, the last epoch's test error beside the val-selected one, wall time and peak RSS per run, and the ratios between arms with a 95 %
bootstrap interval over seeds (paired: every resample draws the same seeds for both arms).
"""
from __future__ import annotations

import argparse
import json
import concurrent.futures as cf
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


TERM_WEIGHTS = ("consistency_weight", "vat_weight", "entropy_weight", "pseudo_label_weight")
# Reset with the weights in the faithful arms: the views of train.augment also reach the labeled batch.
TERM_SWITCHES = {"augment": False}
ARMS = ("supervised", "supervised+term", "ssgan", "ssgan+term")
# (numerator, denominator): what the GAN adds, alone and over the term; what the term adds, without and with the GAN.
RATIOS = (("ssgan", "supervised"), ("ssgan+term", "supervised+term"), ("supervised+term", "supervised"),
          ("ssgan+term", "ssgan"), ("ssgan+term", "supervised"))


def arm_params(params: dict, arm: str) -> dict:
    """One arm's params: its train.mode, and the term weights zeroed unless it is a +term arm."""
    mode, _, with_term = arm.partition("+")
    train = {**params["train"], "mode": mode}
    if not with_term:
        train.update({k: 0.0 for k in TERM_WEIGHTS}, **TERM_SWITCHES)
    return {**params, "train": train}


def _one_run(params: dict, data_dir: str, device: str = "cpu", arm: str = "") -> dict:
    """Train and test one configuration in this (child) process."""
    import contextlib
    import io

    import torch

    from ssgan import metrics as M
    from ssgan.training.checkpoint import model_from_payload
    from ssgan.config import from_mapping
    from ssgan.data.parquet import read_split
    from ssgan.training.loop import LocalSession, TrainJob, run_training

    class ProgressSession(LocalSession):
        """A Fashion-MNIST run takes minutes per epoch on a CPU: say where each run is."""

        def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
            super().report(metrics, checkpoint_dir)
            pseudo = "".join(f" {k} {metrics[k]:.3f}" for k in (M.PSEUDO_LABEL_SHARE, M.PSEUDO_LABEL_ACCURACY_VAL)
                             if k in metrics)
            print(f"{_run_label(cfg.train.seed, arm or cfg.train.mode)} epoch {len(self.reports)}/{cfg.train.epochs} "
                  f"{M.VAL_ERROR} {metrics[M.VAL_ERROR]:.4f}{pseudo} ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)

    torch.set_num_threads(1)
    cfg = from_mapping(params)
    session, start = ProgressSession(device), time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run_training(TrainJob(cfg, data_dir), session)
    seconds = time.perf_counter() - start
    model = model_from_payload(session.state["best"])
    test = read_split(Path(data_dir) / "test.parquet")
    accuracy = M.accuracy(M.predict(model.discriminator, test.images), test.labels)
    # The last epoch's classifier beside the val-selected one: how much the selection on val moves the number.
    final = session.state["ema"]
    if final is not None:
        model.discriminator.load_state_dict({k.removeprefix("module."): v for k, v in final.items() if k != "n_averaged"})
    else:
        model.discriminator.load_state_dict(session.state["discriminator"])
    final_accuracy = M.accuracy(M.predict(model.discriminator, test.images), test.labels)
    return {"arm": arm or cfg.train.mode, "mode": cfg.train.mode, "seed": cfg.train.seed, "test_error": 1.0 - accuracy, "best_epoch": model.epoch,
            "val_error": 1.0 - model.val_accuracy, "final_test_error": 1.0 - final_accuracy,
            "seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_label(seed: int, arm: str) -> str:
    """The prefix of every line a run prints, progress and result alike."""
    return f"  seed {seed} {arm:<16}"


def _prepare(params: dict, out: Path) -> None:
    from ssgan.config import from_mapping
    from ssgan.data.prepare import prepare

    prepare(from_mapping(params, ("data",)).data, out)


def _override(params: dict, assignment: str) -> None:
    key, _, value = assignment.partition("=")
    section, _, name = key.partition(".")
    if not name or not value:
        raise SystemExit(f"--set {assignment!r}: expected section.key=value")
    params.setdefault(section, {})[name] = yaml.safe_load(value)


def main(argv: list[str] | None = None) -> None:
    from ssgan.config import ConfigError, from_mapping

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="data.source (default: the params file's)")
    parser.add_argument("--labels-per-class", type=int, help="data.n_labeled_per_class (default: the params file's)")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds to run")
    parser.add_argument("--first-seed", type=int, default=0, help="the first of them (seeds are consecutive)")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="base params (data, model, train sections)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a param")
    parser.add_argument("--term", action="append", default=[], metavar="train.KEY=VALUE",
                        help="a term setting for the +term arms only, e.g. train.vat_weight=1")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    parser.add_argument("--from", dest="saved", type=Path, action="append", default=[], metavar="RUNS.json",
                        help="print the table from runs saved with --out (repeatable) instead of training")
    parser.add_argument("--out", type=Path, help="also write every run's numbers to this JSON file")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one CPU thread each)")
    parser.add_argument("--device", default="cpu", help="torch device of every run, e.g. cuda (runs in parallel share it)")
    args = parser.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms:
        raise SystemExit(f"ssl_gain: --arms {args.arms!r}: unknown arm {unknown[0] if unknown else '(none)'}; allowed: {', '.join(ARMS)}")
    if args.seeds < 1 or args.first_seed < 0:
        raise SystemExit(f"ssl_gain: --seeds {args.seeds} --first-seed {args.first_seed}: need at least one seed, none negative")

    base = yaml.safe_load(args.params.read_text())
    base.setdefault("data", {})
    if args.source is not None:
        base["data"]["source"] = args.source
    if args.labels_per_class is not None:
        base["data"]["n_labeled_per_class"] = args.labels_per_class
    for assignment in args.set + args.term:
        _override(base, assignment)
    base.setdefault("train", {})
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit(f"ssl_gain: --device {args.device}: no CUDA GPU here; leave --device out to run on the CPU")
    try:
        config = from_mapping(base)  # a bad key fails here in one line, before any data is prepared
    except ConfigError as err:
        raise SystemExit(f"ssl_gain: {err}") from None
    if not any(getattr(config.train, k) > 0 for k in TERM_WEIGHTS):
        arms = [a for a in arms if "+" not in a]
        if not arms:
            raise SystemExit("ssl_gain: the +term arms need a term: set one with --term train.consistency_weight=0.1 (or vat_weight, entropy_weight)")
    if args.saved:  # e.g. the faithful arms and the +term arms, run at different times
        chosen = set(seeds(args))
        results = [r for path in args.saved for r in json.loads(path.read_text())["results"]
                   if r["arm"] in arms and r["seed"] in chosen]
        missing = sorted({(a, s) for a in arms for s in chosen} - {(r["arm"], r["seed"]) for r in results})
        if missing:
            raise SystemExit(f"ssl_gain: --from: no saved run for (arm, seed) {missing[0]}; run it, or narrow --arms / --seeds")
        print_table(args, config, results, arms)
        return
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="ssl-gain-") as tmp, cf.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
        runs = []
        for seed in seeds(args):
            params = {**base, "data": {**base["data"], "seed": seed}}
            data_dir = Path(tmp) / f"seed{seed}"
            _prepare(params, data_dir)
            for arm in arms:
                run_params = arm_params(params, arm)
                run_params["train"].update(seed=seed, num_workers=1)
                runs.append(pool.submit(_one_run, run_params, str(data_dir), args.device, arm))
        results = []
        for future in cf.as_completed(runs):
            r = future.result()
            results.append(r)
            print(f"{_run_label(r['seed'], r['arm'])} test_error {r['test_error']:.4f} "
                  f"(selected: epoch {r['best_epoch']}, val_error {r['val_error']:.4f}; final epoch: test_error {r['final_test_error']:.4f}) "
                  f"{r['seconds']:.0f} s {r['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
    print_table(args, config, results, arms)
    if args.out:
        args.out.write_text(json.dumps({"argv": sys.argv[1:], "results": sorted(results, key=lambda r: (r["arm"], r["seed"]))}, indent=1))


def seeds(args: argparse.Namespace) -> range:
    return range(args.first_seed, args.first_seed + args.seeds)


def bootstrap_ratio(num: list[float], den: list[float], draws: int = 20000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of mean(num) / mean(den) over seeds resampled with replacement, paired by seed."""
    import numpy as np

    a, b = np.asarray(num), np.asarray(den)
    idx = np.random.default_rng(seed).integers(0, len(a), size=(draws, len(a)))
    ratios = a[idx].mean(axis=1) / np.maximum(b[idx].mean(axis=1), 1e-12)
    return float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


def _final(rs: list[dict]) -> str:
    """Mean final-epoch test error; runs saved before it was recorded have none."""
    finals = [r["final_test_error"] for r in rs if "final_test_error" in r]
    return f"{100 * statistics.mean(finals):.2f} %" if len(finals) == len(rs) else "–"


def print_table(args: argparse.Namespace, config, results: list[dict], arms: list[str]) -> None:
    data, tc = config.data, config.train
    labels = f"{data.n_labeled} labels" if data.n_labeled else f"{data.n_labeled_per_class} labels/class"
    chosen = seeds(args)
    shown = [k for k in TERM_WEIGHTS if getattr(tc, k)]
    shown += ["consistency_shift"] * bool(tc.consistency_weight and tc.consistency_shift) + ["vat_epsilon"] * bool(tc.vat_weight)
    shown += ["consistency_target"] * bool(tc.consistency_weight and tc.consistency_target != "student")
    shown += ["pseudo_label_threshold"] * bool(tc.pseudo_label_weight) + ["augment"] * tc.augment
    shown += ["second_g_step_above"] * (tc.second_g_step_above is not None)
    terms = ", ".join(f"{k}={getattr(tc, k)}" for k in shown)
    print(f"\nSSL gain on {data.source}, {labels}, {len(chosen)} seeds ({chosen[0]}-{chosen[-1]}); "
          f"epochs={tc.epochs} steps_per_epoch={tc.steps_per_epoch} batch_size={tc.batch_size} "
          f"arch={config.model.arch} ema_warmup={tc.ema_warmup}; term: {terms or 'none'}")
    print("| arm | test error (mean ± std) | per seed | mean selected val error | final-epoch test error | wall time / run | peak RSS / run |")
    print("|---|---|---|---|---|---|---|")
    errors = {}
    for arm in arms:
        rs = sorted((r for r in results if r["arm"] == arm), key=lambda r: r["seed"])
        errors[arm] = [r["test_error"] for r in rs]
        std = statistics.stdev(errors[arm]) if len(rs) > 1 else 0.0
        print(f"| {arm} | {100 * statistics.mean(errors[arm]):.2f} % ± {100 * std:.2f} | "
              f"{', '.join(f'{100 * e:.2f}' for e in errors[arm])} | "
              f"{100 * statistics.mean(r['val_error'] for r in rs):.2f} % | {_final(rs)} | {statistics.mean(r['seconds'] for r in rs):.0f} s | "
              f"{max(r['peak_rss_mib'] for r in rs):.0f} MiB |")
    print()
    for num, den in RATIOS:
        if num in errors and den in errors:
            lo, hi = bootstrap_ratio(errors[num], errors[den])
            ratio = statistics.mean(errors[num]) / statistics.mean(errors[den])
            print(f"ratio {num} / {den} = {ratio:.2f} (95 % bootstrap over seeds {lo:.2f}-{hi:.2f})")


if __name__ == "__main__":
    main()
