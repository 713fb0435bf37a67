"""Training-step speed: milliseconds per step of SSGAN and of supervised-only, for a params file's model.

    python benchmarks/step_speed.py                                                   # params.yaml, CPU
    python benchmarks/step_speed.py --params benchmarks/params/fashion_mnist_100.yaml --device cuda \
        --variant eager --variant graph --variant compile --variant compile+graph

Times what the training loop does per step (D update, G update, EMA update) on one fixed batch of
random images of the dataset's shape, after warm-up steps, so batch loading is left out. On CUDA
the clock is read after the GPU has finished. Prints a table: ms per step, steps per second, peak
memory (GPU allocations on CUDA, process RSS on the CPU).

Variants: `eager` is the training loop as it runs today. `compile` runs D and G through
`torch.compile`. `graph` captures the whole step (both updates, Adam, EMA) in one CUDA graph and
replays it, which removes the per-kernel launch cost that dominates these small models on a GPU;
Adam then runs with `capturable=True`. A graph replays fixed memory, so the loop would have to copy
each batch into static tensors and keep the lr in a tensor; this script measures the ceiling.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# (H, W, C) of each built-in source's images before data.image_size / data.channels apply.
NATIVE_SHAPES = {"digits": (8, 8, 1), "mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1),
                 "cifar10": (32, 32, 3), "svhn": (32, 32, 3)}


def image_shape(data) -> tuple[int, int, int]:
    """(C, H, W) of the prepared images, by the data package's own size and channel rule."""
    from ssgan.data.transform import target_shape

    if data.source in NATIVE_SHAPES:
        native = NATIVE_SHAPES[data.source]
    elif data.image_size is not None and data.channels is not None:
        native = (data.image_size, data.image_size, data.channels)
    else:
        raise SystemExit(f"step_speed: data.source {data.source}: set data.image_size and data.channels in the params file")
    h, w, c = target_shape(native, data.image_size, data.channels)
    return c, h, w


VARIANTS = ("eager", "compile", "graph", "compile+graph")


def cuda_graph(step, warmup: int):
    """Capture one call of `step` in a CUDA graph and return its replay. `step` must not make the host
    wait for the GPU (tests/test_gpu.py checks the loop's step). Warm-up runs on a side stream, as
    capture requires, so that Adam's state and the libraries' workspaces exist before capture."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(max(warmup, 3)):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def time_steps(config, mode: str, shape: tuple[int, int, int], device: str, steps: int, warmup: int,
               variant: str = "eager") -> dict:
    import torch

    from ssgan.training.models import build_models, data_dependent_init
    from ssgan.training.step import Batch, StepContext, StepOptions, ema_update, ssgan_step, supervised_step
    from ssgan.training.loop import build_ema, build_optimizers, terms_of

    tc, classes, n = config.train, 10, config.train.batch_size
    torch.manual_seed(tc.seed)
    d, g = (m.to(device) for m in build_models(config.model, shape, classes))
    batch = Batch(torch.rand(n, *shape, device=device), torch.arange(n, device=device) % classes,
                  torch.rand(n, *shape, device=device))
    data_dependent_init(d, torch.cat([batch.x_labeled, batch.x_unlabeled]))
    data_dependent_init(g, g.sample_latent(n, device=device), g.sample_classes(n, device=device))
    ema = build_ema(tc, d)
    opt_d, opt_g = build_optimizers(tc, d, g)
    if "graph" in variant:
        for group in (*opt_d.param_groups, *opt_g.param_groups):
            group["capturable"] = True  # Adam keeps its step count on the GPU, so replays advance it
    options = StepOptions(tc.unsupervised_weight, config.model.generator_loss, terms_of(tc, config.data.source),
                          tc.second_g_step_above)
    # The teacher of consistency_target: teacher is the EMA, as in the training loop.
    context = StepContext(ema.module if ema is not None else None)
    # The compiled modules share D's and G's parameters; EMA reads the plain D.
    d_run, g_run = (torch.compile(d), torch.compile(g)) if "compile" in variant else (d, g)

    def step() -> None:
        if mode == "supervised":
            supervised_step(d_run, opt_d, batch, options.terms, context)
        else:
            ssgan_step(d_run, g_run, opt_d, opt_g, batch, options, context)
        if ema is not None:
            ema_update(ema, d)

    cuda = device.startswith("cuda")
    compile_start = time.perf_counter()
    for _ in range(warmup):
        step()
    if "graph" in variant:
        step = cuda_graph(step, warmup)
    if cuda:
        torch.cuda.synchronize()
    setup_seconds = time.perf_counter() - compile_start
    before = [p.detach().clone() for p in d.parameters()]
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
    # A replayed graph that no longer updated D would time nothing useful.
    if not any(bool((p.detach() != b).any()) for p, b in zip(d.parameters(), before)):
        raise RuntimeError(f"step_speed: {variant} {mode}: D's weights did not change over the timed steps")
    return {"mode": mode, "variant": variant, "ms_per_step": 1000 * seconds / steps, "peak_mib": peak,
            "setup_s": setup_seconds}


def main(argv: list[str] | None = None) -> None:
    import torch

    from ssgan.config import ConfigError, from_mapping

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="data, model and train sections")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--term", action="append", default=[], metavar="train.KEY=VALUE",
                        help="also time both modes with D's unlabeled-data terms, e.g. train.consistency_weight=0.1")
    parser.add_argument("--variant", action="append", choices=VARIANTS,
                        help="how the step runs (repeatable; default eager): " + ", ".join(VARIANTS))
    args = parser.parse_args(argv)
    variants = args.variant or ["eager"]
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("step_speed: --steps must be >= 1 and --warmup >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"step_speed: --device {args.device}: no CUDA GPU here; leave --device out to run on the CPU")
    if not args.device.startswith("cuda") and any("graph" in v for v in variants):
        raise SystemExit("step_speed: --variant graph needs --device cuda (CUDA graphs exist only on the GPU)")
    try:
        params = yaml.safe_load(args.params.read_text())
        config = from_mapping(params)
        train = {**params.get("train", {})}
        for assignment in args.term:
            key, _, value = assignment.partition("=")
            if not key.startswith("train.") or not value:
                raise ConfigError(f"--term {assignment!r}: expected train.KEY=VALUE")
            train[key.removeprefix("train.")] = yaml.safe_load(value)
        term_config = from_mapping({**params, "train": train}) if args.term else None
    except ConfigError as err:
        raise SystemExit(f"step_speed: {err}") from None
    torch.set_num_threads(args.threads)
    shape = image_shape(config.data)
    rows = [time_steps(config, mode, shape, args.device, args.steps, args.warmup, variant)
            for variant in variants for mode in ("ssgan", "supervised")]
    if term_config is not None:
        rows += [{**time_steps(term_config, mode, shape, args.device, args.steps, args.warmup, variant), "mode": f"{mode}+term"}
                 for variant in variants for mode in ("ssgan", "supervised")]
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"cpu, {args.threads} thread(s)"
    print(f"\nStep speed: arch={config.model.arch} image={'x'.join(map(str, shape))} batch={config.train.batch_size} "
          f"labeled + {config.train.batch_size} unlabeled, device {name}, torch {torch.__version__}, {args.steps} steps"
          + (f"; term: {', '.join(args.term)}" if args.term else ""))
    print("| mode | variant | ms / step | steps / s | peak memory | warm-up + capture/compile s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['variant']} | {r['ms_per_step']:.2f} | {1000 / r['ms_per_step']:.1f} "
              f"| {r['peak_mib']:.0f} MiB | {r['setup_s']:.1f} |")


if __name__ == "__main__":
    main()
