"""The per-worker loop in-process (LocalSession): determinism, EMA model selection, modes."""
import dataclasses

import numpy as np
import pytest
import torch

from ssgan import metrics as M
from ssgan.training.checkpoint import model_from_payload
from ssgan.training.loop import LocalSession, TrainJob, run_training


def _train(cfg, data_dir, capsys=None):
    session = LocalSession()
    run_training(TrainJob(cfg, str(data_dir)), session)
    return session


def _with(cfg, **train):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))


def test_fixed_seed_on_cpu_gives_identical_metrics(prepared_dir, tiny_config):
    a, b = _train(tiny_config, prepared_dir), _train(tiny_config, prepared_dir)
    assert a.reports == b.reports and len(a.reports) == tiny_config.train.epochs
    other = _train(_with(tiny_config, seed=1), prepared_dir)
    assert other.reports != a.reports


def test_selected_model_is_the_best_on_val_and_scores_as_reported(prepared_dir, tiny_config):
    session = _train(_with(tiny_config, epochs=3), prepared_dir)
    best = max(session.reports, key=lambda r: r["val_accuracy"])
    model = model_from_payload(session.state["best"])
    assert model.val_accuracy == best["val_accuracy"]
    from ssgan.data.parquet import read_split
    val = read_split(prepared_dir / "val.parquet")
    assert M.accuracy(M.predict(model.discriminator, val.images), val.labels) == pytest.approx(model.val_accuracy)


def test_ema_weights_differ_from_raw_weights(prepared_dir, tiny_config):
    state = _train(tiny_config, prepared_dir).state
    ema = state["ema"]
    raw = state["discriminator"]
    key = next(k for k in raw if k.endswith("original1"))
    assert not torch.equal(ema[f"module.{key}"], raw[key])
    assert int(ema["n_averaged"]) == tiny_config.train.epochs * tiny_config.train.steps_per_epoch
    no_ema = _train(_with(tiny_config, ema_decay=0.0), prepared_dir).state
    assert no_ema["ema"] is None


@pytest.mark.parametrize("mode", ["ssgan", "supervised"])
def test_modes_report_their_losses(prepared_dir, tiny_config, mode):
    reports = _train(_with(tiny_config, mode=mode), prepared_dir).reports
    # The default recipe's consistency term on D is reported in both modes.
    expected = {"epoch", "step", "loss_sup", "loss_cons", "val_accuracy", "val_error"} | ({"loss_unl", "loss_gen"} if mode == "ssgan" else set())
    assert set(reports[0]) == expected
    assert [(r["epoch"], r["step"]) for r in reports] == [(1, 3), (2, 6)]
    assert all(np.isfinite(v) for r in reports for v in r.values())


@pytest.mark.parametrize("mode", ["ssgan", "supervised"])
def test_teacher_and_pseudo_labels_report_their_metrics_and_stay_deterministic(prepared_dir, tiny_config, mode):
    cfg = _with(tiny_config, mode=mode, consistency_target="teacher", pseudo_label_weight=1.0,
                pseudo_label_threshold=0.15, consistency_rampup=1, augment=True, augment_translate=1, augment_cutout=3)
    a, b = _train(cfg, prepared_dir).reports, _train(cfg, prepared_dir).reports
    assert a == b  # views, teacher and pseudo-labels draw from the seeded per-epoch streams
    new = {M.LOSS_PSEUDO, M.PSEUDO_LABEL_SHARE, M.PSEUDO_LABEL_SHARE_VAL}
    assert new <= set(a[0]) and all(0 <= r[M.PSEUDO_LABEL_SHARE] <= 1 for r in a)
    assert a != _train(_with(tiny_config, mode=mode), prepared_dir).reports


def test_checkpoint_every_reports_state_only_on_those_epochs_and_the_last(prepared_dir, tiny_config):
    class Recording(LocalSession):
        def __init__(self):
            super().__init__()
            self.checkpointed = []

        def report(self, metrics, checkpoint_dir):
            super().report(metrics, checkpoint_dir)
            if checkpoint_dir is not None:
                self.checkpointed.append(metrics["epoch"])

    session = Recording()
    run_training(TrainJob(_with(tiny_config, epochs=5, checkpoint_every=2), str(prepared_dir)), session)
    assert session.checkpointed == [2, 4, 5]
    assert len(session.reports) == 5 and session.state["epoch"] == 5


def test_adam_settings_reach_both_optimizers(prepared_dir, tiny_config):
    state = _train(_with(tiny_config, epochs=1, adam_eps=1e-4, beta1=0.4), prepared_dir).state
    for name in ("opt_d", "opt_g"):
        group = state[name]["param_groups"][0]
        assert group["eps"] == 1e-4 and group["betas"][0] == 0.4


def test_resumed_run_continues_bit_for_bit(prepared_dir, tiny_config, tmp_path):
    import contextlib
    import shutil

    cfg = _with(tiny_config, epochs=3)

    class Saving(LocalSession):  # keeps a copy of every checkpoint, as Ray's storage would
        def report(self, metrics, checkpoint_dir):
            super().report(metrics, checkpoint_dir)
            if checkpoint_dir is not None:
                shutil.copytree(checkpoint_dir, tmp_path / f"epoch{metrics['epoch']}")

    class Resuming(LocalSession):
        @contextlib.contextmanager
        def restore(self):
            yield tmp_path / "epoch2"

    whole = Saving()
    run_training(TrainJob(cfg, str(prepared_dir)), whole)
    resumed = Resuming()
    run_training(TrainJob(cfg, str(prepared_dir)), resumed)
    assert [r["epoch"] for r in resumed.reports] == [3]  # only the missing epoch was trained
    assert resumed.reports[0] == whole.reports[-1]
    assert resumed.state["history"] == whole.state["history"]
    for key in ("discriminator", "generator", "ema"):
        for name, tensor in whole.state[key].items():
            assert torch.equal(resumed.state[key][name], tensor), f"{key}.{name}"
    assert resumed.state["opt_d"]["state"][0]["exp_avg"].equal(whole.state["opt_d"]["state"][0]["exp_avg"])


def test_epoch_seeds_do_not_collide():
    from ssgan.training.loop import epoch_seed

    states = {tuple(epoch_seed(0, rank, epoch).generate_state(4)) for rank in range(4) for epoch in range(1, 2001)}
    assert len(states) == 4 * 2000  # the old seed*100003 + rank*1009 + epoch repeated once epochs passed 1009


def test_scale_lr_multiplies_by_the_number_of_workers(prepared_dir, tiny_config):
    class RankZeroOfTwo(LocalSession):  # rank 0's view of a two-worker run (no process group: stats stay local)
        def __init__(self):
            super().__init__()
            self.world_size = 2

    for scale, expected in ((False, 0.002), (True, 0.004)):
        session = RankZeroOfTwo()
        run_training(TrainJob(_with(tiny_config, epochs=1, lr=0.002, lr_decay_fraction=0.0, scale_lr=scale),
                              str(prepared_dir)), session)
        for name in ("opt_d", "opt_g"):
            assert session.state[name]["param_groups"][0]["lr"] == pytest.approx(expected)
