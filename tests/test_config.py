from pathlib import Path

import pytest
import yaml

from ssgan.config import Config, ConfigError, flatten, from_dict, from_mapping, to_dict

ROOT = Path(__file__).resolve().parents[1]


def test_repo_params_yaml_parses():
    cfg = from_mapping(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert cfg.data.source == "digits"
    assert cfg.train.mode in ("ssgan", "supervised")


# Keys whose params.yaml value is a project setting, not part of the recipe: the code default means "none".
PROJECT_SETTINGS = {"data.extra_labels"}


def test_params_yaml_and_the_code_defaults_cannot_drift():
    """One source of defaults: a partial params file gets the recipe params.yaml documents."""
    from ssgan.sweep.curve import curve_from_mapping
    from ssgan.sweep.space import tune_from_mapping

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    differing = [f"{k}: params.yaml {v!r}, code {d!r}" for k, (v, d) in _pairs(params).items()
                 if v != d and k not in PROJECT_SETTINGS]
    tune, default_tune = tune_from_mapping(params), tune_from_mapping({})
    differing += [f"tune.{k}: params.yaml {params['tune'][k]!r}, code {getattr(default_tune, k)!r}"
                  for k in params["tune"] if k != "space" and getattr(tune, k) != getattr(default_tune, k)]
    curve, default_curve = curve_from_mapping(params), curve_from_mapping({})
    differing += [f"curve.{k}: params.yaml {params['curve'][k]!r}, code {getattr(default_curve, k)!r}"
                  for k in params["curve"] if getattr(curve, k) != getattr(default_curve, k)]
    assert differing == []


def _pairs(params):
    ours, defaults = flatten(from_mapping(params)), flatten(Config())
    return {k: (ours[k], defaults[k]) for k in ours
            if k.split(".")[0] in params and k.split(".")[1] in params[k.split(".")[0]]}


def test_defaults_and_round_trip():
    cfg = from_mapping({})
    assert cfg == Config()
    assert from_dict(to_dict(cfg)) == cfg
    assert flatten(cfg)["train.lr"] == cfg.train.lr
    assert flatten(cfg)["model.d_hidden"] == list(cfg.model.d_hidden)


def test_lists_become_tuples_and_ints_floats():
    cfg = from_mapping({"model": {"d_hidden": [8, 4]}, "train": {"lr": 1}})
    assert cfg.model.d_hidden == (8, 4)
    assert isinstance(cfg.train.lr, float)


@pytest.mark.parametrize("params, fragment", [
    ({"train": {"epoch": 3}}, "train.epoch: unknown key; allowed keys: mode, epochs"),
    ({"trian": {}}, "trian: unknown params section"),
    ({"train": {"epochs": "10"}}, "train.epochs: got '10'; allowed: an integer"),
    ({"train": {"epochs": 0}}, "train.epochs: got 0; allowed: an integer >= 1"),
    ({"train": {"mode": "semi"}}, "train.mode: got 'semi'; allowed: ssgan | supervised"),
    ({"train": {"use_gpu": "yes"}}, "train.use_gpu: got 'yes'; allowed: true | false"),
    ({"train": {"beta1": 1.0}}, "train.beta1: got 1.0; allowed: a number in [0, 1)"),
    ({"train": {"adam_eps": 0.0}}, "train.adam_eps: got 0.0; allowed: a number > 0"),
    ({"train": {"num_workers": True}}, "train.num_workers: got True; allowed: an integer"),
    ({"model": {"d_hidden": [8, "x"]}}, "model.d_hidden[1]: got 'x'"),
    ({"model": {"d_hidden": []}}, "model.d_hidden: got (); allowed: a non-empty list"),
    ({"data": {"source": "imagenet"}}, "data.source: got 'imagenet'; allowed: digits"),
    ({"data": 3}, "data: expected a mapping"),
    ({"train": {"consistency_weight": -0.1}}, "train.consistency_weight: got -0.1; allowed: a number >= 0 (0: off)"),
    ({"train": {"vat_weight": -1}}, "train.vat_weight: got -1.0; allowed: a number >= 0"),
    ({"train": {"entropy_weight": -1}}, "train.entropy_weight: got -1.0; allowed: a number >= 0"),
    ({"train": {"vat_epsilon": 0}}, "train.vat_epsilon: got 0.0; allowed: a number > 0"),
    ({"train": {"consistency_shift": 9}}, "train.consistency_shift: got 9; allowed: an integer in [0, 8]"),
    ({"train": {"pi_model_weight": 1}}, "train.pi_model_weight: unknown key; allowed keys: mode"),
    ({"train": {"pseudo_label_threshold": 0}}, "train.pseudo_label_threshold: got 0.0; allowed: a number in (0, 1]"),
    ({"train": {"pseudo_label_threshold": 1.5}}, "train.pseudo_label_threshold: got 1.5; allowed: a number in (0, 1]"),
    ({"train": {"pseudo_label_weight": -1}}, "train.pseudo_label_weight: got -1.0; allowed: a number >= 0 (0: off)"),
    ({"train": {"consistency_target": "mean_teacher"}}, "train.consistency_target: got 'mean_teacher'; allowed: student | teacher"),
    ({"train": {"consistency_target": "teacher", "ema_decay": 0}}, "train.consistency_target: got 'teacher'; allowed: student with ema_decay: 0"),
    ({"train": {"consistency_rampup": -1}}, "train.consistency_rampup: got -1; allowed: an integer >= 0"),
    ({"train": {"augment_translate": 9}}, "train.augment_translate: got 9; allowed: null or an integer in [0, 8]"),
    ({"train": {"augment_cutout": -1}}, "train.augment_cutout: got -1; allowed: null or an integer in [0, 64]"),
    ({"train": {"augment": True, "consistency_shift": 1}}, "train.consistency_shift: got 1; allowed: 0 with augment: true"),
    ({"train": {"second_g_step_above": -1}}, "train.second_g_step_above: got -1.0; allowed: null or a number >= 0"),
    ({"train": {"augment": True, "augment_flip": True}}, "train.augment_flip: got True; allowed: false or null for data.source digits"),
    ({"data": {"source": "mnist"}, "train": {"augment": True, "augment_flip": True}}, "for data.source mnist (a mirrored mnist image"),
])
def test_bad_values_name_the_key(params, fragment):
    with pytest.raises(ConfigError) as err:
        from_mapping(params)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_only_requested_sections_are_checked():
    cfg = from_mapping({"data": {"seed": 3}, "train": {"epochs": 0}}, sections=("data",))
    assert cfg.data.seed == 3 and cfg.train == Config().train


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(Exception):
        cfg.train.epochs = 5  # type: ignore[misc]
