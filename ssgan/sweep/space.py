"""The sweep's typed config (params.yaml `tune`) and its search space, as pure functions.

A space maps dotted params keys to distributions. Random search draws every trial here, from
`tune.seed`, before any trial starts, and each drawn trial is checked by the same config code as
`ssgan train`; Optuna draws adaptively, so its bounds and choices are checked instead.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import numpy as np

from ssgan.config import SECTIONS, Config, ConfigError, require, from_mapping, section_from_mapping

TRIAL_SECTIONS = ("data", "model", "train")  # what a trial's config is built from


Distribution = Literal["loguniform", "uniform", "choice", "grid"]


@dataclass(frozen=True)
class SearchParam:
    """One searched key: `{loguniform: [lo, hi]}`, `{uniform: [lo, hi]}`, `{choice: [...]}` or `{grid: [...]}`."""
    key: str  # a dotted params key: model.<name> or train.<name>
    kind: Distribution
    values: tuple[Any, ...]  # (lo, hi) for loguniform and uniform; the options for choice and grid


# Train keys a sweep sets itself (tune.workers_per_trial, tune.use_gpu, tune.epochs) or that do
# not change what a trial computes: searching them is refused.
NOT_SEARCHABLE = ("train.num_workers", "train.use_gpu", "train.epochs", "train.checkpoint_every",
                  "train.max_failures", "train.sample_rows", "train.resources_per_worker", "train.accelerator_type",
                  "train.stream_unlabeled")


@dataclass(frozen=True)
class TuneConfig:
    space: tuple[SearchParam, ...] = ()
    num_samples: int = 8  # random draws (per grid point); optuna: trials
    max_concurrent_trials: int | None = None  # null: as many as the cluster's CPUs (GPUs) hold
    workers_per_trial: int = 1
    use_gpu: bool = False
    epochs: int | None = 20  # per trial (ASHA's max_t); null: train.epochs
    metric: Literal["val_error", "val_accuracy"] = "val_error"  # val_error is minimised, val_accuracy maximised
    scheduler: Literal["asha", "fifo"] = "asha"
    grace_period: int = 5  # ASHA: epochs every trial runs before it can be stopped
    reduction_factor: int = 2  # ASHA: keep 1 / reduction_factor of the trials at each rung
    search: Literal["random", "optuna"] = "random"
    seed: int = 0

    def validate(self, s: str) -> None:
        require(self.num_samples >= 1, f"{s}.num_samples", "an integer >= 1", self.num_samples)
        require(self.max_concurrent_trials is None or self.max_concurrent_trials >= 1, f"{s}.max_concurrent_trials",
                 "null or an integer >= 1", self.max_concurrent_trials)
        require(self.workers_per_trial >= 1, f"{s}.workers_per_trial", "an integer >= 1", self.workers_per_trial)
        require(self.epochs is None or self.epochs >= 1, f"{s}.epochs", "null or an integer >= 1", self.epochs)
        require(self.grace_period >= 1, f"{s}.grace_period", "an integer >= 1", self.grace_period)
        require(self.reduction_factor >= 2, f"{s}.reduction_factor", "an integer >= 2", self.reduction_factor)
        require(self.seed >= 0, f"{s}.seed", "an integer >= 0", self.seed)
        if self.search == "optuna":
            for p in self.space:
                require(p.kind != "grid", f"{s}.space.{p.key}", "loguniform | uniform | choice with search: optuna "
                         "(grid needs search: random)", p.kind)
                require(all(v is None or isinstance(v, (bool, int, float, str)) for v in p.values),
                         f"{s}.space.{p.key}", "numbers, strings or booleans as choices with search: optuna", list(p.values))


def parse_space(value: Any, s: str = "tune.space") -> tuple[SearchParam, ...]:
    """`tune.space` from params: dotted model./train. keys, each mapped to one distribution."""
    if value is None:
        return ()
    require(isinstance(value, Mapping), s, "a mapping of dotted keys (train.lr: {loguniform: [lo, hi]})", value)
    space = []
    for key, spec in value.items():
        where = f"{s}.{key}"
        section, _, name = str(key).partition(".")
        require(section in ("model", "train"), where, "model.<key> or train.<key> (the prepared data is fixed "
                 "for a sweep)", key)
        fields = [f.name for f in dataclasses.fields(SECTIONS[section])]
        require(name in fields, where, f"a key of {section}: {', '.join(fields)}", key)
        require(key not in NOT_SEARCHABLE, where, "not one of " + ", ".join(NOT_SEARCHABLE) +
                 " (the sweep sets those through tune.workers_per_trial, tune.use_gpu, tune.epochs)", key)
        kinds = typing.get_args(Distribution)
        require(isinstance(spec, Mapping) and len(spec) == 1 and next(iter(spec)) in kinds, where,
                 "one of {loguniform: [lo, hi]} | {uniform: [lo, hi]} | {choice: [...]} | {grid: [...]}", spec)
        kind, values = next(iter(spec.items()))
        require(isinstance(values, (list, tuple)) and len(values) >= 1, where, f"{kind}: a non-empty list", values)
        if kind in ("loguniform", "uniform"):
            numbers = len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            low = 0 if kind == "loguniform" else float("-inf")
            require(numbers and low < values[0] < values[1], where,
                     f"{kind}: [lo, hi] with {'0 < ' if kind == 'loguniform' else ''}lo < hi", values)
        space.append(SearchParam(str(key), kind, tuple(values)))
    return tuple(space)


def tune_from_mapping(params: Mapping[str, Any]) -> TuneConfig:
    """The `tune` section of a params mapping (absent: the defaults, with an empty space)."""
    values = params.get("tune")
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"tune: expected a mapping of keys, got {type(values).__name__}")
    values = dict(values)
    space = parse_space(values.pop("space", None))
    cfg = dataclasses.replace(section_from_mapping(TuneConfig, values, "tune"), space=space)
    cfg.validate("tune")
    return cfg


def field_hint(key: str) -> Any:
    section, _, name = key.partition(".")
    return typing.get_type_hints(SECTIONS[section])[name]


def cast(key: str, value: Any) -> Any:
    """A drawn number in the key's own type: integer keys (batch_size, ...) are rounded."""
    hint = field_hint(key)
    if isinstance(value, (float, np.floating)) and (hint is int or hint == int | None):
        return int(round(float(value)))
    if isinstance(value, np.generic):
        return value.item()
    return value


def with_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the params mapping with each dotted key set."""
    out = copy.deepcopy(dict(params))
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        out[section] = {**(out.get(section) or {}), name: value}
    return out


def trial_config(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> Config:
    return from_mapping(with_overrides(params, overrides), TRIAL_SECTIONS)


def check_space(params: Mapping[str, Any], space: tuple[SearchParam, ...]) -> None:
    """Every bound and option must pass the train config's own checks (one line naming the key)."""
    for p in space:
        for value in p.values:
            try:
                trial_config(params, {p.key: cast(p.key, value)})
            except ConfigError as err:
                raise ConfigError(f"tune.space.{p.key}: {p.kind} value {value!r} is refused by the train config "
                                  f"check ({err})") from None


def _draw(p: SearchParam, rng: np.random.Generator) -> Any:
    if p.kind == "loguniform":
        value = math.exp(rng.uniform(math.log(p.values[0]), math.log(p.values[1])))
    elif p.kind == "uniform":
        value = rng.uniform(p.values[0], p.values[1])
    else:
        return copy.deepcopy(p.values[int(rng.integers(len(p.values)))])
    return cast(p.key, float(f"{value:.4g}"))  # 4 significant digits: readable, and plenty for a sweep


def sample_trials(space: tuple[SearchParam, ...], num_samples: int, seed: int) -> list[dict[str, Any]]:
    """Random search: the grid's points, each with `num_samples` draws of the other keys (Tune's semantics)."""
    rng = np.random.default_rng(seed)
    grid = [p for p in space if p.kind == "grid"]
    points = list(itertools.product(*[p.values for p in grid])) if grid else [()]
    trials = []
    for _ in range(num_samples):
        for point in points:
            trial = {p.key: cast(p.key, copy.deepcopy(v)) for p, v in zip(grid, point)}
            trial.update({p.key: _draw(p, rng) for p in space if p.kind != "grid"})
            trials.append({p.key: trial[p.key] for p in space})  # in the space's order
    return trials


def check_trials(params: Mapping[str, Any], trials: list[dict[str, Any]]) -> None:
    for i, overrides in enumerate(trials):
        try:
            trial_config(params, overrides)
        except ConfigError as err:
            raise ConfigError(f"tune.space: drawn trial {i} {overrides} is refused by the train config check ({err})") from None
