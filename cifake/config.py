"""Typed configuration: defaults <- YAML file <- ``key=value`` overrides, validated in one place.

Every default is written once, here, next to its meaning (the ``help`` metadata); ``cifake config
--reference`` and the README's config table are generated from these fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, UserError


def _f(default: Any, help: str, **rules: Any) -> Any:
    """A config field: default, one-line help, and validation rules (choices, min, max, gt)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **rules})
    return field(default=default, metadata={"help": help, **rules})


@dataclass
class DataConfig:
    dir: str = _f("data/cifake", "dataset root holding train/{REAL,FAKE} and optionally test/{REAL,FAKE}")
    val_fraction: float = _f(0.1, "share of train held out for validation (seeded, stratified)", gt=0, max=0.9)
    fraction: float = _f(1.0, "seeded, stratified subset of every split to use (CI: 0.01)", gt=0, max=1)
    split_seed: int = _f(42, "seed of the subset and validation split; independent of train.seed", min=0)
    cache: bool = _f(True, "keep decoded images in <dir>/.cifake-cache so the next run starts at once")
    on_bad_file: str = _f("error", "what to do with a file that does not decode", choices=("error", "skip"))


@dataclass
class AugmentConfig:
    flip: bool = _f(False, "random horizontal flips of training images")
    shift: int = _f(0, "random translation of training images, in pixels (reflect padding); 0 = off", min=0, max=8)


@dataclass
class ModelConfig:
    name: str = _f("small_cnn", "model builder from the registry (cifake/models.py)")
    stem_filters: int = _f(0, "channels of a stem Conv2D before the blocks; 0 = no stem", min=0)
    stem_stride: int = _f(2, "stride of the stem (2 halves the resolution: 4x fewer FLOPs after it)", min=1, max=4)
    filters: list[int] = _f([32, 64, 128], "conv blocks: output channels of each block, in order")
    convs_per_block: int = _f(1, "Conv2D layers in each block", min=1, max=4)
    kernel_size: int = _f(3, "square kernel size of every Conv2D", min=1, max=7)
    batch_norm: bool = _f(True, "BatchNormalization after every Conv2D")
    activation: str = _f("relu", "activation of conv and dense layers", choices=("relu", "gelu", "silu"))
    pooling: str = _f("max", "downsampling (2x2) after each block", choices=("max", "avg", "none"))
    head: str = _f("global_avg", "how conv features become a vector", choices=("global_avg", "flatten"))
    dense: list[int] = _f([], "hidden Dense layers of the head (units each); [] = none")
    dropout: float = _f(0.0, "dropout rate before each Dense layer of the head", min=0, max=0.9)
    weights: str = _f(
        "none", "transfer models: backbone weights, none | imagenet | PATH to a Keras .h5/.weights.h5 file"
    )
    input_size: int = _f(96, "transfer models: the 32x32 input is resized to this inside the model", min=32, max=512)
    freeze_epochs: int = _f(0, "transfer models: epochs with the backbone frozen before fine-tuning all layers", min=0)


@dataclass
class TrainConfig:
    name: str = _f("", "run directory name under runs_dir; '' = the config file's stem")
    runs_dir: str = _f("runs", "where run directories are created (never overwritten: name-2, name-3, ...)")
    epochs: int = _f(10, "passes over the training split", min=1)
    batch_size: int = _f(128, "images per step", min=1)
    optimizer: str = _f("adamw", "optimiser", choices=("adam", "adamw", "sgd"))
    lr: float = _f(1e-3, "peak learning rate", gt=0)
    weight_decay: float = _f(5e-4, "decoupled weight decay (adamw, sgd)", min=0)
    momentum: float = _f(0.9, "SGD (Nesterov) momentum", min=0, max=1)
    schedule: str = _f("cosine", "learning-rate schedule, per step", choices=("constant", "cosine", "onecycle"))
    warmup_epochs: float = _f(0.0, "linear warm-up from 0 to lr (cosine; onecycle uses 30% of the run)", min=0)
    label_smoothing: float = _f(0.0, "binary label smoothing", min=0, max=0.5)
    early_stopping: int = _f(0, "stop after this many epochs without improving monitor; 0 = off", min=0)
    monitor: str = _f("val_accuracy", "metric that picks best.keras", choices=("val_accuracy", "val_auc", "val_loss"))
    seed: int = _f(0, "seed of weights, shuffling and augmentation (CPU runs are reproducible)", min=0)
    mixed_precision: str = _f("auto", "float16 compute on a capable GPU", choices=("auto", "on", "off"))
    distribute: str = _f("auto", "multi-GPU strategy", choices=("auto", "none", "mirrored"))
    threads: int = _f(0, "CPU threads for TensorFlow ops; 0 = all cores", min=0)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """Block-style sections, one key per line, lists inline; loads back to an equal Config."""
        lines = []
        for section, values in self.to_dict().items():
            lines.append(f"{section}:")
            lines.extend(f"  {key}: {yaml_scalar(value)}" for key, value in values.items())
        return "\n".join(lines) + "\n"


def yaml_scalar(value: Any) -> str:
    """One value as inline YAML (``[32, 64]``, ``''``, ``0.001``)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


SECTIONS: dict[str, type] = typing.get_type_hints(Config)  # section name -> its dataclass


def all_keys() -> list[str]:
    """Every valid dotted key, e.g. ``train.epochs``."""
    return [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def reference() -> list[tuple[str, str, str]]:
    """(key, default, help) for every key: the source of ``cifake config --reference``."""
    rows = []
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            rows.append((f"{section}.{f.name}", yaml_scalar(default), f.metadata["help"]))
    return rows


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _coerce(key: str, value: Any, typ: Any, meta: dict) -> Any:
    """Return ``value`` as ``typ`` or raise ConfigError with a line saying what is allowed."""

    def bad(allowed: str) -> ConfigError:
        return ConfigError(f"{key}: got {value!r} ({type(value).__name__}); expected {allowed}")

    if typ is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
    elif typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
    elif typ is float:
        if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
            value = float(value)  # PyYAML reads 1e-3 as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        value = float(value)
    elif typ is str:
        if not isinstance(value, str):
            raise bad("a string")
    elif typing.get_origin(typ) is list:
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise bad("a list of integers, e.g. [32, 64]")
        if any(v < 1 for v in value):
            raise bad("a list of positive integers")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(
            f"{key}: got {value!r}; expected one of {', '.join(choices)}.{_suggest(str(value), list(choices))}"
        )
    for rule, ok, word in (
        ("min", lambda v, r: v >= r, ">="),
        ("max", lambda v, r: v <= r, "<="),
        ("gt", lambda v, r: v > r, ">"),
    ):
        if rule in meta and not ok(value, meta[rule]):
            raise ConfigError(f"{key}: got {value!r}; expected a value {word} {meta[rule]}")
    return value


def _apply(cfg: Config, key: str, value: Any, problems: list[str]) -> None:
    section, _, name = key.partition(".")
    if section not in SECTIONS or not name or "." in name:
        problems.append(f"'{key}' is not a valid key.{_suggest(key, all_keys())} (see: cifake config --reference)")
        return
    cls = SECTIONS[section]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        problems.append(f"'{key}' is not a valid key.{_suggest(key, all_keys())} (see: cifake config --reference)")
        return
    hints = typing.get_type_hints(cls)
    try:
        setattr(getattr(cfg, section), name, _coerce(key, value, hints[name], fields[name].metadata))
    except ConfigError as e:
        problems.extend(e.problems)


def _flatten(data: dict, source: str, problems: list[str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, values in data.items():
        if not isinstance(values, dict):
            if str(section) in SECTIONS:
                problems.append(f"{source}: section '{section}' must be a mapping of keys, got {values!r}")
            else:
                flat[str(section)] = values  # reported as an unknown key
            continue
        for name, value in values.items():
            flat[f"{section}.{name}"] = value
    return flat


def read_yaml(path: str | Path) -> dict:
    """Load a YAML mapping; every failure is a one-line UserError naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path} (check the path; recipes live in configs/)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config file must be a mapping of sections (data:, model:, train:), got a {type(data).__name__}"
        )
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``train.lr=1e-3`` -> ("train.lr", "1e-3" coerced later); the value follows YAML rules."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not key=value (example: train.epochs=3)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Resolve defaults <- YAML file <- overrides; raise ConfigError listing every problem found."""
    cfg = Config()
    problems: list[str] = []
    if path is not None:
        flat = _flatten(read_yaml(path), str(path), problems)
        for key, value in flat.items():
            _apply(cfg, key, value, problems)
        if not cfg.train.name:
            cfg.train.name = Path(path).stem
    for text in overrides:
        try:
            key, value = parse_override(text)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        _apply(cfg, key, value, problems)
    if problems:
        raise ConfigError(problems)
    if not cfg.train.name:
        cfg.train.name = cfg.model.name
    return cfg


def config_from_dict(data: dict) -> Config:
    """Rebuild a Config from ``to_dict()`` output (a run's config.yaml); unknown keys are errors."""
    cfg = Config()
    problems: list[str] = []
    for key, value in _flatten({k: v for k, v in data.items() if k in SECTIONS}, "config", problems).items():
        _apply(cfg, key, value, problems)
    if problems:
        raise ConfigError(problems)
    return cfg
