"""Data-parallel semantics: shards of the unlabeled split, and DDP gradients equal to one big batch."""
import dataclasses
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ssgan.data.parquet import read_split
from ssgan.training.models import build_models
from ssgan.training.step import Batch, discriminator_losses
from ssgan.training.unlabeled_terms import Terms, weighted_sum

B = 8  # per-rank batch


def test_rank_shards_are_disjoint_and_cover_the_split(prepared_dir):
    whole = read_split(prepared_dir / "unlabeled.parquet")
    for world in (1, 2, 3):
        shards = [read_split(prepared_dir / "unlabeled.parquet", rank, world).images for rank in range(world)]
        assert sum(len(s) for s in shards) == len(whole.images)
        assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1
        np.testing.assert_array_equal(np.concatenate(shards), whole.images)  # in order: disjoint and covering


def _global_batch(shape):
    g = torch.Generator().manual_seed(7)
    return (torch.rand(2 * B, *shape, generator=g), torch.randint(0, 10, (2 * B,), generator=g),
            torch.rand(2 * B, *shape, generator=g), torch.rand(2 * B, *shape, generator=g))


def _noiseless(model_cfg):
    return dataclasses.replace(model_cfg, input_noise=0.0, hidden_noise=0.0)  # D's noise is random per call


def _d_objective(d, x_lab, y_lab, x_unl, fake, terms):
    losses = discriminator_losses(d, Batch(x_lab, y_lab, x_unl), fake, terms)
    return losses["loss_sup"] + losses["loss_unl"] + weighted_sum(losses, terms)


def _rank(rank, world, init_file, model_cfg, terms, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    d, _ = build_models(model_cfg, (1, 8, 8), 10)
    ddp = torch.nn.parallel.DistributedDataParallel(d)
    x_lab, y_lab, x_unl, fake = (t[rank * B:(rank + 1) * B] for t in _global_batch((1, 8, 8)))
    _d_objective(ddp, x_lab, y_lab, x_unl, fake, terms).backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in d.named_parameters()}, out)
    dist.destroy_process_group()


# The entropy term is deterministic, so it too must give one batch's gradient; the consistency term rides
# along (0 without noise) to check that its extra view keeps the forward's layout intact under DDP.
@pytest.mark.parametrize("terms", [Terms(), Terms(consistency_weight=1.0, entropy_weight=0.5)], ids=["plain", "terms"])
def test_two_ranks_of_batch_b_give_the_gradients_of_one_batch_2b(tiny_config, tmp_path, terms):
    model_cfg = _noiseless(tiny_config.model)
    out = tmp_path / "grads.pt"
    mp.spawn(_rank, args=(2, str(tmp_path / "init"), model_cfg, terms, str(out)), nprocs=2, join=True)
    ddp_grads = torch.load(out)

    torch.manual_seed(0)
    d, _ = build_models(model_cfg, (1, 8, 8), 10)
    x_lab, y_lab, x_unl, fake = _global_batch((1, 8, 8))
    _d_objective(d, x_lab, y_lab, x_unl, fake, terms).backward()
    assert ddp_grads.keys() == dict(d.named_parameters()).keys()
    for name, p in d.named_parameters():
        torch.testing.assert_close(ddp_grads[name], p.grad, rtol=1e-5, atol=1e-6, msg=name)
