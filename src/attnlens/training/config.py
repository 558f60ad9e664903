"""Typed job configuration: YAML file + dotted `key=value` overrides -> `JobConfig`.

The YAML mirrors the dataclasses one to one (`model`, `data`, `training`, `output`), so an override
such as `training.max_steps=100` names exactly the field it changes. Everything is checked before
any data or weights are touched: unknown keys, wrong types and impossible values raise
`ConfigError` naming the key, because a typo found after an hour of training costs an hour.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from attnlens.baselines.job_config import BaselineModelConfig, validate_baseline_section
from attnlens.errors import ConfigError
from attnlens.loading import ARCHITECTURES

METRIC_NAMES = ("accuracy", "f1", "precision", "recall")
MIXED_PRECISION_CHOICES = ("auto", "no", "bf16", "fp16")
CLASS_WEIGHT_CHOICES = ("none", "balanced")
SAMPLER_CHOICES = ("length_grouped", "balanced")
FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass
class ModelConfig:
    """Which encoder to start from and how long its inputs may be."""

    base_model: str = "default"  # "default" -> attnlens.DEFAULT_BASE_MODEL; else local folder or Hub id
    revision: str | None = None
    max_length: int = 128  # tokens per example after truncation, [CLS] and [SEP] included
    dropout: float | None = None  # overrides hidden and attention dropout of the base config when set
    arch: str = "encoder"  # encoder (fine-tune base_model: BERT, RoBERTa, DistilBERT) | birnn_attention | han
    baseline: BaselineModelConfig = field(default_factory=BaselineModelConfig)  # birnn_attention / han only


@dataclass
class DataConfig:
    """Where the examples come from and how their columns are read."""

    train: str = ""  # local csv/tsv/json/jsonl/parquet file, `attnlens://data/<file>`, or a Hub dataset id
    validation: str | None = None  # same forms; None -> split `validation_fraction` off the training set
    dataset_config: str | None = None  # Hub dataset configuration name (e.g. "sst2" of "nyu-mll/glue")
    train_split: str = "train"
    validation_split: str = "validation"
    validation_fraction: float = 0.1
    text_column: str = "text"
    label_column: str = "label"
    label_names: list[str] = field(default_factory=lambda: ["negative", "positive"])


@dataclass
class TrainingConfig:
    """Optimisation, evaluation, checkpointing and stopping."""

    epochs: int = 3
    max_steps: int | None = None  # optional cap on optimizer steps, whatever `epochs` says
    batch_size: int = 32  # per process and per forward pass
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    # Learning rate of each layer = this ** (layers above it) x learning_rate; 1.0 -> one rate for all.
    layerwise_lr_decay: float = 1.0
    # R-Drop (Liang et al. 2021): > 0 runs each batch twice under different dropout and adds this
    # weight x the two predictions' symmetric KL to the loss; 0 -> plain cross-entropy, one pass.
    rdrop_alpha: float = 0.0
    # Label smoothing (Szegedy et al. 2016): the target puts this mass uniformly over all classes
    # and the rest on the true label, so the loss stops rewarding ever larger logits; 0 -> off.
    label_smoothing: float = 0.0
    # Per-class weights of the training cross-entropy: "none" (all 1), "balanced" (n_samples /
    # (n_classes x count of the class), from the training split), or one weight per data.label_names.
    class_weights: str | list[float] = "none"
    # "length_grouped" (every example once per epoch) or "balanced" (drawn with replacement so every
    # class is seen equally often); both length-grouped when group_by_length is true.
    sampler: str = "length_grouped"
    max_grad_norm: float | None = 1.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    mixed_precision: str = "auto"  # auto: bf16 where the accelerator supports it, else full precision
    seed: int = 42
    group_by_length: bool = True
    eval_every_steps: int = 0  # 0 -> evaluate at epoch ends only
    metric_for_best: str = "accuracy"
    early_stopping_patience: int = 0  # evaluations without improvement before stopping; 0 -> never
    checkpoint_every_steps: int = 0  # 0 -> no mid-run checkpoints
    keep_checkpoints: int = 2
    resume: str = "none"  # "auto" (newest complete checkpoint in output.dir), a checkpoint path, or "none"
    log_every_steps: int = 10
    # Fit temperature scaling on the validation split at the end and store it in best/config.json
    # (attnlens.calibration): calibrated probabilities everywhere the model is used, labels unchanged.
    calibrate: bool = True


@dataclass
class OutputConfig:
    """Where results go, and whether they are published."""

    dir: str = "outputs/run"
    push_to_hub: bool = False
    hub_repo_id: str | None = None
    hub_private: bool = True
    log_with: str | None = "tensorboard"  # an Accelerate tracker name, or None for no tracker
    # Audit the best model on the validation split at the end (attnlens.report): best/report.html and
    # best/report.json, and per-class tables in the model card.
    report: bool = True


@dataclass
class JobConfig:
    """One fine-tuning job, as written in `configs/*.yaml`."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _Yaml12BoolLoader(yaml.SafeLoader):
    """YAML with 1.2 booleans: only true/false are booleans, so `mixed_precision: no` stays "no"."""


_Yaml12BoolLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12BoolLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12BoolLoader)  # a SafeLoader subclass: no arbitrary objects


def load_job_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> JobConfig:
    """Read a YAML job file, apply `key=value` overrides, and return a validated `JobConfig`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read job config ({error.strerror})") from error
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    for override in overrides:
        apply_override(raw, override)
    return job_config_from_dict(raw, source=str(path))


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set `section.key=value` in the raw mapping; the value is parsed as YAML (`1e-4`, `null`, `[a, b]`)."""
    key, sep, value_text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    try:
        value = parse_yaml(value_text) if value_text.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {key}: value {value_text!r} is not valid YAML") from error
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {'.'.join(parts[: depth + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def job_config_from_dict(raw: dict[str, Any], source: str = "config") -> JobConfig:
    """Build the dataclasses from a nested mapping, checking every key and type, then every value."""
    config = _build_dataclass(JobConfig, raw, prefix="", source=source)
    validate_job_config(config, source)
    return config


def _build_dataclass(cls: type, raw: Any, prefix: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'top level'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {prefix}{unknown[0]} (known in {prefix.rstrip('.') or 'top level'}: "
            f"{', '.join(sorted(known))})"
        )
    values = {}
    for name, value in raw.items():
        hint = hints[name]
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            values[name] = _build_dataclass(hint, value if value is not None else {}, f"{key}.", source)
        else:
            values[name] = _coerce(value, hint, key, source)
    return cls(**values)


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check `value` against a field's type hint; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key, source)
            except ConfigError:
                continue
        raise ConfigError(f"{source}: {key} must be {_describe(hint)}, got {value!r}")
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list of {_describe(item_hint)}, got {value!r}")
        return [_coerce(item, item_hint, f"{key}[{i}]", source) for i, item in enumerate(value)]
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and is_number:
        return float(value)
    if hint is float and isinstance(value, str) and FLOAT_TEXT.fullmatch(value.strip()):
        # YAML 1.1 reads `5e-5` (no dot) as a string; everyone writes learning rates that way.
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{source}: {key} must be {_describe(hint)}, got {value!r}")


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(option) for option in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is list:
        return f"a list of {_describe(typing.get_args(hint)[0])}"
    return getattr(hint, "__name__", str(hint))


def validate_job_config(config: JobConfig, source: str = "config") -> None:
    """Reject values no job could run with, naming the key and the limit it breaks."""

    def fail(key: str, value: Any, rule: str) -> typing.NoReturn:
        raise ConfigError(f"{source}: {key}={value!r} {rule}")

    model, data, training, output = config.model, config.data, config.training, config.output
    if not model.base_model:
        fail("model.base_model", model.base_model, "must name a folder, a Hub id or 'default'")
    if model.arch == "bert":  # the name before RoBERTa and DistilBERT joined; configs keep working
        model.arch = "encoder"
    if model.arch not in ARCHITECTURES:
        fail("model.arch", model.arch, f"must be one of {list(ARCHITECTURES)}")
    validate_baseline_section(model.baseline, source)
    if model.max_length < 8:
        fail("model.max_length", model.max_length, "must be at least 8")
    if model.dropout is not None and not 0.0 <= model.dropout < 1.0:
        fail("model.dropout", model.dropout, "must be in [0, 1)")
    if not data.train:
        fail("data.train", data.train, "must name a data file or a Hub dataset id")
    if not 0.0 < data.validation_fraction < 1.0:
        fail("data.validation_fraction", data.validation_fraction, "must be in (0, 1)")
    if len(data.label_names) < 2:
        fail("data.label_names", data.label_names, "must list at least 2 labels")
    if len(set(data.label_names)) != len(data.label_names):
        fail("data.label_names", data.label_names, "must not repeat a label")
    if not data.text_column or not data.label_column:
        fail("data.text_column", data.text_column, "and data.label_column must be non-empty")
    positive_ints = {
        "training.epochs": training.epochs,
        "training.batch_size": training.batch_size,
        "training.eval_batch_size": training.eval_batch_size,
        "training.gradient_accumulation_steps": training.gradient_accumulation_steps,
        "training.keep_checkpoints": training.keep_checkpoints,
        "training.log_every_steps": training.log_every_steps,
    }
    for key, value in positive_ints.items():
        if value < 1:
            fail(key, value, "must be at least 1")
    non_negative_ints = {
        "training.eval_every_steps": training.eval_every_steps,
        "training.checkpoint_every_steps": training.checkpoint_every_steps,
        "training.early_stopping_patience": training.early_stopping_patience,
        "training.seed": training.seed,
    }
    for key, value in non_negative_ints.items():
        if value < 0:
            fail(key, value, "must be 0 or more")
    if training.max_steps is not None and training.max_steps < 1:
        fail("training.max_steps", training.max_steps, "must be at least 1 (or null for no cap)")
    if not (math.isfinite(training.learning_rate) and training.learning_rate > 0):
        fail("training.learning_rate", training.learning_rate, "must be a positive finite number")
    if training.weight_decay < 0:
        fail("training.weight_decay", training.weight_decay, "must be 0 or more")
    if not 0.0 <= training.warmup_ratio < 1.0:
        fail("training.warmup_ratio", training.warmup_ratio, "must be in [0, 1)")
    if not (math.isfinite(training.rdrop_alpha) and training.rdrop_alpha >= 0):
        fail("training.rdrop_alpha", training.rdrop_alpha, "must be 0 (off) or a positive finite number")
    if not 0.0 <= training.label_smoothing < 1.0:
        fail("training.label_smoothing", training.label_smoothing, "must be in [0, 1)")
    validate_class_weights(training.class_weights, data.label_names, fail)
    if training.sampler not in SAMPLER_CHOICES:
        fail("training.sampler", training.sampler, f"must be one of {list(SAMPLER_CHOICES)}")
    if not 0.0 < training.layerwise_lr_decay <= 1.0:
        fail("training.layerwise_lr_decay", training.layerwise_lr_decay, "must be in (0, 1]")
    if training.layerwise_lr_decay != 1.0 and config.model.arch != "encoder":
        fail("training.layerwise_lr_decay", training.layerwise_lr_decay,
             f"applies to an encoder's layers only; model.arch is {config.model.arch!r} (use 1.0)")
    if training.max_grad_norm is not None and training.max_grad_norm <= 0:
        fail("training.max_grad_norm", training.max_grad_norm, "must be positive (or null for no clipping)")
    for key, value in (("training.adam_beta1", training.adam_beta1), ("training.adam_beta2", training.adam_beta2)):
        if not 0.0 <= value < 1.0:
            fail(key, value, "must be in [0, 1)")
    if training.adam_epsilon <= 0:
        fail("training.adam_epsilon", training.adam_epsilon, "must be positive")
    if training.mixed_precision not in MIXED_PRECISION_CHOICES:
        fail("training.mixed_precision", training.mixed_precision, f"must be one of {list(MIXED_PRECISION_CHOICES)}")
    if training.metric_for_best not in METRIC_NAMES:
        fail("training.metric_for_best", training.metric_for_best, f"must be one of {list(METRIC_NAMES)}")
    if not training.resume:
        fail("training.resume", training.resume, "must be 'auto', 'none' or a checkpoint path")
    if not output.dir:
        fail("output.dir", output.dir, "must name a folder")
    if output.push_to_hub and not output.hub_repo_id:
        fail("output.hub_repo_id", output.hub_repo_id, "must be set (owner/name) when output.push_to_hub is true")
    if output.hub_repo_id is not None and output.hub_repo_id.count("/") != 1:
        fail("output.hub_repo_id", output.hub_repo_id, "must look like owner/name")


def validate_class_weights(
    class_weights: str | list[float], label_names: list[str], fail: typing.Callable[[str, Any, str], typing.NoReturn]
) -> None:
    """A rule name, or exactly one positive finite weight per label (in `label_names` order)."""
    key = "training.class_weights"
    if isinstance(class_weights, str):
        if class_weights not in CLASS_WEIGHT_CHOICES:
            fail(key, class_weights, f"must be one of {list(CLASS_WEIGHT_CHOICES)} or a list of one weight per label")
        return
    if len(class_weights) != len(label_names):
        fail(key, class_weights, f"must have one weight per label of data.label_names ({len(label_names)}: "
             f"{label_names}), got {len(class_weights)}")
    for name, weight in zip(label_names, class_weights, strict=True):
        if not (math.isfinite(weight) and weight > 0):
            fail(key, class_weights, f"must hold positive finite weights; the weight of {name!r} is {weight}")
