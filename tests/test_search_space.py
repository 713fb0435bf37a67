"""The sweep's config and search space: parsing, the train config's own checks, seeded draws."""
import sys

import pytest

from ssgan.config import ConfigError
from ssgan.sweep.space import check_space, check_trials, parse_space, sample_trials, tune_from_mapping, with_overrides
from tests.conftest import TINY_PARAMS


@pytest.mark.parametrize("tune, message", [
    ({"space": {"data.seed": {"grid": [1]}}}, "tune.space.data.seed: .*model.<key> or train.<key>"),
    ({"space": {"train.lrr": {"grid": [1]}}}, "tune.space.train.lrr: .*a key of train: mode, epochs"),
    ({"space": {"train.lr": {"loguniform": [0, 1]}}}, r"tune.space.train.lr: got \[0, 1\]; allowed: loguniform"),
    ({"space": {"train.lr": {"uniform": [2, 1]}}}, "tune.space.train.lr: .*lo < hi"),
    ({"space": {"train.lr": {"normal": [0, 1]}}}, "tune.space.train.lr: .*one of {loguniform"),
    ({"space": {"train.lr": {"choice": []}}}, "tune.space.train.lr: .*a non-empty list"),
    ({"space": {"train.num_workers": {"grid": [1, 2]}}}, "tune.space.train.num_workers: .*tune.workers_per_trial"),
    ({"nums": 3}, "tune.nums: unknown key; allowed keys: space, num_samples"),
    ({"scheduler": "hyperband"}, "tune.scheduler: got 'hyperband'; allowed: asha | fifo"),
    ({"reduction_factor": 1}, "tune.reduction_factor: got 1"),
    ({"search": "optuna", "space": {"train.lr": {"grid": [0.1]}}}, "tune.space.train.lr: .*grid needs search: random"),
    ({"search": "optuna", "space": {"model.d_hidden": {"choice": [[8], [16]]}}}, "numbers, strings or booleans"),
])
def test_bad_tune_section_is_one_line_naming_the_key(tune, message):
    with pytest.raises(ConfigError, match=message) as err:
        tune_from_mapping({"tune": tune})
    assert "\n" not in str(err.value)


def test_bounds_and_choices_pass_the_train_config_check():
    with pytest.raises(ConfigError, match=r"tune.space.train.ema_decay: uniform value 1.5 .*train.ema_decay: got 1.5"):
        check_space(TINY_PARAMS, parse_space({"train.ema_decay": {"uniform": [0.5, 1.5]}}))
    with pytest.raises(ConfigError, match="tune.space.model.arch: choice value 'rnn'"):
        check_space(TINY_PARAMS, parse_space({"model.arch": {"choice": ["mlp", "rnn"]}}))
    check_space(TINY_PARAMS, parse_space({"train.lr": {"loguniform": [1e-4, 1e-2]}, "model.d_hidden": {"choice": [[8], [16, 8]]}}))


def test_random_draws_are_seeded_typed_and_cover_the_grid():
    space = parse_space({"train.lr": {"loguniform": [1e-4, 1e-2]}, "train.batch_size": {"uniform": [8, 64]},
                         "model.d_hidden": {"choice": [[8], [16, 8]]}, "train.seed": {"grid": [0, 1, 2]}})
    trials = sample_trials(space, 4, seed=7)
    assert len(trials) == 12 and trials == sample_trials(space, 4, seed=7)
    assert trials != sample_trials(space, 4, seed=8)
    assert sorted(t["train.seed"] for t in trials) == [0] * 4 + [1] * 4 + [2] * 4
    assert all(1e-4 <= t["train.lr"] <= 1e-2 and isinstance(t["train.lr"], float) for t in trials)
    assert all(isinstance(t["train.batch_size"], int) and 8 <= t["train.batch_size"] <= 64 for t in trials)
    assert {tuple(t["model.d_hidden"]) for t in trials} <= {(8,), (16, 8)}
    assert list(trials[0]) == ["train.lr", "train.batch_size", "model.d_hidden", "train.seed"]
    check_trials(TINY_PARAMS, trials)


def test_overrides_merge_into_a_copy():
    merged = with_overrides(TINY_PARAMS, {"train.lr": 0.01, "model.latent_dim": 4})
    assert merged["train"]["lr"] == 0.01 and merged["model"]["latent_dim"] == 4
    assert merged["train"]["epochs"] == TINY_PARAMS["train"]["epochs"] and "lr" not in TINY_PARAMS["train"]


def test_optuna_missing_is_a_clear_error(monkeypatch):
    from ssgan.sweep import tuner

    monkeypatch.setitem(sys.modules, "optuna", None)  # as if not installed: `import optuna` raises
    tc = tune_from_mapping({"tune": {"search": "optuna", "space": {"train.lr": {"loguniform": [1e-4, 1e-2]}}}})
    with pytest.raises(ConfigError, match=r"tune.search: optuna is not installed; `pip install -e '.\[optuna\]'`"):
        tuner.search(tc, None)


def test_optuna_space_when_installed():
    pytest.importorskip("optuna")
    from ssgan.sweep import tuner

    tc = tune_from_mapping({"tune": {"search": "optuna", "seed": 3, "space": {
        "train.lr": {"loguniform": [1e-4, 1e-2]}, "train.batch_size": {"uniform": [8, 64]},
        "model.generator_loss": {"choice": ["feature_matching", "minimax"]}}}})
    space, search_alg, num_samples = tuner.search(tc, None)
    assert type(search_alg).__name__ == "OptunaSearch" and num_samples == tc.num_samples
    assert set(space) == {"train.lr", "train.batch_size", "model.generator_loss"}
    assert 8 <= space["train.batch_size"].sample() <= 64 and isinstance(space["train.batch_size"].sample(), int)


def test_the_unlabeled_terms_are_searchable_and_their_bounds_checked():
    from ssgan.sweep.space import trial_config

    space = parse_space({"train.consistency_weight": {"choice": [0.0, 0.1, 1.0]},
                         "train.vat_epsilon": {"loguniform": [0.5, 4.0]}})
    check_space(TINY_PARAMS, space)
    trials = sample_trials(space, 4, seed=0)
    configs = [trial_config(TINY_PARAMS, t).train for t in trials]
    assert [c.consistency_weight for c in configs] == [t["train.consistency_weight"] for t in trials]
    assert all(0.5 <= c.vat_epsilon <= 4.0 for c in configs)
    with pytest.raises(ConfigError, match="tune.space.train.vat_epsilon: uniform value 0.0 is refused"):
        check_space(TINY_PARAMS, parse_space({"train.vat_epsilon": {"uniform": [0.0, 1.0]}}))


def test_teacher_pseudo_labels_and_views_are_searchable_and_checked_before_any_trial():
    from ssgan.sweep.space import trial_config

    space = parse_space({"train.consistency_target": {"choice": ["student", "teacher"]},
                         "train.pseudo_label_threshold": {"uniform": [0.8, 0.99]},
                         "train.pseudo_label_weight": {"choice": [0.0, 1.0]}})
    check_space(TINY_PARAMS, space)
    trials = sample_trials(space, 6, seed=0)
    configs = [trial_config(TINY_PARAMS, t).train for t in trials]
    assert {c.consistency_target for c in configs} <= {"student", "teacher"}
    assert all(0.8 <= c.pseudo_label_threshold <= 0.99 for c in configs)
    # A flip on the digits is refused by the same check a trial's config gets, before Ray starts.
    with pytest.raises(ConfigError, match="train.augment_flip"):
        check_space({**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "augment": True}},
                    parse_space({"train.augment_flip": {"choice": [False, True]}}))
    with pytest.raises(ConfigError, match="train.pseudo_label_threshold"):
        check_space(TINY_PARAMS, parse_space({"train.pseudo_label_threshold": {"uniform": [0.5, 1.5]}}))
