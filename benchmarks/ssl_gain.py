"""SSL gain: SSGAN vs the supervised-only baseline (same D, optimizer, noise, steps) over N seeds.

    python benchmarks/ssl_gain.py --seeds 3 --set train.batch_size=200      # digits-50, params.yaml's model
    python benchmarks/ssl_gain.py --params benchmarks/params/fashion_mnist_100.yaml

Each (seed, mode) trains in its own process with one CPU thread (the in-process `LocalSession`:
one worker, no Ray start-up), on the CPU or with `--device cuda` on a GPU, is selected on val
and scored on test. The seed sets both the labeled subset (data.seed) and the training randomness
(train.seed); `--first-seed` extends an earlier study with new seeds. Each run prints one progress line
per epoch to stderr; at the end comes a table: mean ± std test error per mode, their ratio, wall time
and peak RSS per run.
"""
from __future__ import annotations

import argparse
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


def _one_run(params: dict, data_dir: str, device: str = "cpu") -> dict:
    """Train and test one configuration in this (child) process."""
    import contextlib
    import io

    import torch

    from ssgan import metrics as M
    from ssgan.checkpoint import model_from_payload
    from ssgan.config import from_mapping
    from ssgan.data.parquet import read_split
    from ssgan.train import LocalSession, TrainJob, run_training

    class ProgressSession(LocalSession):
        """A Fashion-MNIST run takes minutes per epoch on a CPU: say where each run is."""

        def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
            super().report(metrics, checkpoint_dir)
            print(f"{_run_label(cfg.train.seed, cfg.train.mode)} epoch {len(self.reports)}/{cfg.train.epochs} "
                  f"{M.VAL_ERROR} {metrics[M.VAL_ERROR]:.4f} ({time.perf_counter() - start:.0f} s)",
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
    return {"mode": cfg.train.mode, "seed": cfg.train.seed, "test_error": 1.0 - accuracy, "best_epoch": model.epoch,
            "val_error": 1.0 - model.val_accuracy,
            "seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_label(seed: int, mode: str) -> str:
    """The prefix of every line a run prints, progress and result alike."""
    return f"  seed {seed} {mode:<10}"


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
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one CPU thread each)")
    parser.add_argument("--device", default="cpu", help="torch device of every run, e.g. cuda (runs in parallel share it)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.first_seed < 0:
        raise SystemExit(f"ssl_gain: --seeds {args.seeds} --first-seed {args.first_seed}: need at least one seed, none negative")

    base = yaml.safe_load(args.params.read_text())
    base.setdefault("data", {})
    if args.source is not None:
        base["data"]["source"] = args.source
    if args.labels_per_class is not None:
        base["data"]["n_labeled_per_class"] = args.labels_per_class
    for assignment in args.set:
        _override(base, assignment)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit(f"ssl_gain: --device {args.device}: no CUDA GPU here; leave --device out to run on the CPU")
    try:
        config = from_mapping(base)  # a bad key fails here in one line, before any data is prepared
    except ConfigError as err:
        raise SystemExit(f"ssl_gain: {err}") from None
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="ssl-gain-") as tmp, cf.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
        runs = []
        for seed in seeds(args):
            params = {**base, "data": {**base["data"], "seed": seed}}
            data_dir = Path(tmp) / f"seed{seed}"
            _prepare(params, data_dir)
            for mode in ("ssgan", "supervised"):
                run_params = {**params, "train": {**params["train"], "mode": mode, "seed": seed, "num_workers": 1}}
                runs.append(pool.submit(_one_run, run_params, str(data_dir), args.device))
        results = []
        for future in cf.as_completed(runs):
            r = future.result()
            results.append(r)
            print(f"{_run_label(r['seed'], r['mode'])} test_error {r['test_error']:.4f} "
                  f"(selected: epoch {r['best_epoch']}, val_error {r['val_error']:.4f}) "
                  f"{r['seconds']:.0f} s {r['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
    print_table(args, config, results)


def seeds(args: argparse.Namespace) -> range:
    return range(args.first_seed, args.first_seed + args.seeds)


def print_table(args: argparse.Namespace, config, results: list[dict]) -> None:
    data, tc = config.data, config.train
    labels = f"{data.n_labeled} labels" if data.n_labeled else f"{data.n_labeled_per_class} labels/class"
    chosen = seeds(args)
    print(f"\nSSL gain on {data.source}, {labels}, {len(chosen)} seeds ({chosen[0]}-{chosen[-1]}); "
          f"epochs={tc.epochs} steps_per_epoch={tc.steps_per_epoch} batch_size={tc.batch_size} "
          f"arch={config.model.arch}")
    print("| mode | test error (mean ± std) | per seed | wall time / run | peak RSS / run |")
    print("|---|---|---|---|---|")
    means = {}
    for mode in ("ssgan", "supervised"):
        rs = sorted((r for r in results if r["mode"] == mode), key=lambda r: r["seed"])
        errors = [r["test_error"] for r in rs]
        means[mode] = statistics.mean(errors)
        std = statistics.stdev(errors) if len(errors) > 1 else 0.0
        print(f"| {mode} | {100 * means[mode]:.2f} % ± {100 * std:.2f} | "
              f"{', '.join(f'{100 * e:.2f}' for e in errors)} | {statistics.mean(r['seconds'] for r in rs):.0f} s | "
              f"{max(r['peak_rss_mib'] for r in rs):.0f} MiB |")
    print(f"\nratio ssgan / supervised = {means['ssgan'] / means['supervised']:.2f}")


if __name__ == "__main__":
    main()
