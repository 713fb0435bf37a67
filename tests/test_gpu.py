"""CUDA only, skipped cleanly without a GPU: the loop trains there, and queues its steps without
making the host wait for the GPU (which would leave a fast GPU idle between small kernels)."""
import numpy as np
import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ssgan.training.batches import WorkerData, batch_stream
from ssgan.training.checkpoint import model_from_payload
from ssgan.training.models import build_models, data_dependent_init
from ssgan.training.step import StepOptions, ema_update, ssgan_step
from ssgan.training.loop import LocalSession, TrainJob, run_training

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_training_steps_queue_without_host_sync(prepared_dir, tiny_config):
    device = torch.device("cuda")
    data = WorkerData.load(prepared_dir, 0, 1)
    d, g = (m.to(device) for m in build_models(tiny_config.model, data.meta.image_shape, data.meta.num_classes))
    batches = batch_stream(data, 16, np.random.default_rng(0), device)
    first = next(batches)
    data_dependent_init(d, torch.cat([first.x_labeled, first.x_unlabeled]))
    data_dependent_init(g, g.sample_latent(16, device=device), None)
    ema = AveragedModel(d, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    opt_d, opt_g = (torch.optim.Adam(m.parameters(), lr=1e-3) for m in (d, g))
    ssgan_step(d, g, opt_d, opt_g, first, StepOptions())  # first step: optimizer state, library init
    ema_update(ema, d)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            out = ssgan_step(d, g, opt_d, opt_g, next(batches), StepOptions())
            ema_update(ema, d)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(v).item() for v in out.values())
    assert int(ema.n_averaged) == 4


def test_run_training_on_cuda_selects_a_model_that_loads_on_cpu(prepared_dir, tiny_config):
    session = LocalSession("cuda")
    run_training(TrainJob(tiny_config, str(prepared_dir)), session)
    assert len(session.reports) == tiny_config.train.epochs
    assert all(np.isfinite(r["val_error"]) for r in session.reports)
    model = model_from_payload(session.state["best"])
    assert next(model.discriminator.parameters()).device.type == "cpu"


def test_the_whole_step_replays_as_a_cuda_graph(tmp_path):
    """benchmarks/step_speed.py's graph variant: capture succeeds and a replay still trains D."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import step_speed
    from tests.conftest import TINY_PARAMS
    from ssgan.config import from_mapping

    row = step_speed.time_steps(from_mapping(TINY_PARAMS), "ssgan", (1, 8, 8), "cuda", steps=3, warmup=2, variant="graph")
    assert row["ms_per_step"] > 0  # time_steps raises if D's weights did not change
