"""Typed configuration: defaults <- YAML file <- ``key=value`` overrides, validated in one place.

Every default is written once, here, next to its meaning (the ``help`` metadata); ``cifake config
--reference`` and the README's config table are generated from these fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import reprlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .base import limits, renames
from .base.errors import ConfigError, UserError

# The keys a resumed run may change (``cifake train --resume RUN key=value``): none of them changes
# what the finished epochs computed.
RESUMABLE_KEYS = (
    "train.epochs",
    "train.early_stopping",
    "train.threads",
    "train.cluster_timeout",
    "data.dir",
    "data.cache",
)


# The default recipe, shipped in the package: what `cifake train` and `cifake config` use without
# --config (the same file as configs/small_cnn.yaml; a test keeps the two equal).
DEFAULT_RECIPE = Path(__file__).resolve().parent / "recipes" / "small_cnn.yaml"

SEED_MAX = 2**32 - 1  # every seed (data.split_seed, train.seed, --seed) is a NumPy/TensorFlow 32-bit seed


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
    split_seed: int = _f(42, "seed of the subset and validation split; independent of train.seed", min=0, max=SEED_MAX)
    extra_fake: list[str] = _f(
        [],
        "folders of more FAKE images (e.g. other generators' samples) added to the training split only, never "
        "to validation; searched recursively",
        max_len=64,
    )
    extra_real: list[str] = _f(
        [], "folders of more REAL images added to the training split only, never to validation", max_len=64
    )
    extra_min_images: int = _f(
        0,
        "each extra training folder holding fewer images is cycled up to this many an epoch (every image "
        "once, then again), so that generators given one folder each weigh alike; 0 = each image once",
        min=0,
    )
    cache: bool = _f(True, "keep decoded images in <dir>/.cifake-cache so the next run starts at once")
    on_bad_file: str = _f("error", "what to do with a file that does not decode", choices=("error", "skip"))


@dataclass
class AugmentConfig:
    flip: bool = _f(False, "random horizontal flips of training images")
    alternate_flip: bool = _f(
        False,
        "with flip: each image is flipped at random in epoch 1, then every other epoch (each epoch sees the "
        "mirror of what the last one saw, as in airbench)",
    )
    shift: int = _f(0, "random translation of training images, in pixels (reflect padding); 0 = off", min=0, max=8)
    jpeg: float = _f(0.0, "share of training images re-encoded as JPEG (robust training); 0 = off", min=0, max=1)
    jpeg_quality_min: int = _f(30, "lowest JPEG quality drawn (uniform up to jpeg_quality_max)", min=1, max=100)
    jpeg_quality_max: int = _f(95, "highest JPEG quality drawn", min=1, max=100)
    blur: float = _f(0.0, "share of training images blurred (Gaussian); 0 = off", min=0, max=1)
    blur_sigma_max: float = _f(1.5, "largest blur sigma in pixels (drawn uniformly from 0.3)", gt=0.3, max=4)
    resize: float = _f(0.0, "share of training images scaled down and back up (bicubic); 0 = off", min=0, max=1)
    resize_min: int = _f(
        12, "smallest intermediate size in pixels (drawn uniformly up to 31, one per batch)", min=4, max=31
    )
    noise: float = _f(0.0, "share of training images with Gaussian noise added; 0 = off", min=0, max=1)
    noise_sigma_max: float = _f(
        12.0, "largest noise sigma, in 0..255 pixel units (drawn uniformly from 0)", gt=0, max=64
    )
    color: float = _f(
        0.0,
        "share of training images with random brightness, contrast and saturation (each a factor drawn from "
        "1 +- color_strength); 0 = off",
        min=0,
        max=1,
    )
    color_strength: float = _f(
        0.4, "largest change of brightness, contrast and saturation (0.4: x0.6 to x1.4)", gt=0, max=0.9
    )
    spare_extra: bool = _f(
        False,
        "the robust augmentations (jpeg, blur, resize, noise, color) leave the images of data.extra_fake and "
        "data.extra_real untouched (flips still apply): rare fakes are seen as their generator made them",
    )
    ease_off_epochs: int = _f(
        0,
        "the robust augmentations ease off over the last N epochs: each share (jpeg, blur, resize, noise, "
        "color) is scaled down linearly, epoch by epoch, to ease_off_to x its value in the last epoch, so the "
        "network ends on mostly clean images; 0 = the same shares throughout",
        min=0,
    )
    ease_off_to: float = _f(
        0.25, "with ease_off_epochs: the factor on every robust share in the last epoch (0 = all clean)", min=0, max=1
    )


@dataclass
class ModelConfig:
    name: str = _f("small_cnn", "model builder from the registry (cifake/models/registry.py)")
    stem: str = _f(
        "conv",
        "first layer: conv = a learned Conv2D (stem_filters, kernel_size, stem_stride); whiten = a frozen "
        "patch-whitening Conv2D (stem_kernel x stem_kernel patches, 2 x 3 x stem_kernel^2 channels) fitted to "
        "training images, the same for the same train.seed",
        choices=("conv", "whiten"),
    )
    stem_kernel: int = _f(2, "whiten: patch size of the whitening stem", min=1, max=4)
    stem_filters: int = _f(0, "channels of a stem Conv2D before the blocks; 0 = no stem", min=0, max=4096)
    residual_filters: int = _f(
        0,
        "a second stem beside the first, on the image's high-pass residual (each pixel minus its 3x3 mean: the "
        "fine traces a generator leaves and the first stem smooths over), with this many learned channels "
        "(a Conv2D of the first stem's size and stride, BN, activation) concatenated to the first stem's; "
        "0 = none",
        min=0,
        max=1024,
    )
    stem_stride: int = _f(2, "stride of the stem (2 halves the resolution: 4x fewer FLOPs after it)", min=1, max=4)
    filters: list[int] = _f([32, 64, 128], "conv blocks: output channels of each block, in order", max=4096, max_len=16)
    convs_per_block: int = _f(1, "Conv2D layers in each block", min=1, max=4)
    kernel_size: int = _f(3, "square kernel size of every Conv2D", min=1, max=7)
    batch_norm: bool = _f(True, "BatchNormalization after every Conv2D")
    activation: str = _f("relu", "activation of conv and dense layers", choices=("relu", "gelu", "silu"))
    pooling: str = _f("max", "downsampling (2x2) after each block", choices=("max", "avg", "none"))
    head: str = _f("global_avg", "how conv features become a vector", choices=("global_avg", "flatten"))
    dense: list[int] = _f([], "hidden Dense layers of the head (units each); [] = none", max=16384, max_len=8)
    dropout: float = _f(0.0, "dropout rate before each Dense layer of the head", min=0, max=0.9)
    weights: str = _f(
        "none", "transfer models: backbone weights, none | imagenet | PATH to a Keras .h5/.weights.h5 file"
    )
    init: str = _f(
        "",
        "start from the weights of this .keras file or run directory (same architecture), e.g. to fine-tune a "
        "finished run with its own schedule; '' = fresh initialisation",
    )
    input_size: int = _f(96, "transfer models: the 32x32 input is resized to this inside the model", min=32, max=512)
    freeze_epochs: int = _f(
        0, "transfer models: epochs with the backbone frozen before fine-tuning all layers", min=0, max=100_000
    )


@dataclass
class TrainConfig:
    name: str = _f("", "run directory name under runs_dir; '' = the config file's stem", run_name=True)
    runs_dir: str = _f("runs", "where run directories are created (never overwritten: name-2, name-3, ...)")
    epochs: int = _f(10, "passes over the training split", min=1, max=100_000)
    batch_size: int = _f(128, "images per step", min=1, max=65_536)
    optimizer: str = _f("adamw", "optimiser", choices=("adam", "adamw", "sgd"))
    lr: float = _f(1e-3, "peak learning rate", gt=0)
    weight_decay: float = _f(5e-4, "decoupled weight decay (adamw, sgd)", min=0)
    momentum: float = _f(0.9, "SGD (Nesterov) momentum", min=0, max=1)
    schedule: str = _f(
        "cosine",
        "learning-rate schedule, per step; triangle = linear up over warmup_epochs, then linear down to 0",
        choices=("constant", "cosine", "onecycle", "triangle"),
    )
    warmup_epochs: float = _f(
        0.0, "linear warm-up from 0 to lr (cosine, triangle; onecycle uses 30% of the run)", min=0, max=100_000
    )
    label_smoothing: float = _f(0.0, "binary label smoothing", min=0, max=0.5)
    teacher: list[str] = _f(
        [],
        "distillation: models (.keras, .tflite or run directories, trained on this run's split: one that saw a "
        "validation image is refused) whose mean P(FAKE) on each clean training image goes into that image's "
        "target, also for its augmented views; scored once, kept in RUN/teacher.npy; [] = off",
        max_len=16,
    )
    distill_weight: float = _f(
        0.5, "distillation: the teachers' share of the target, (1 - w) * label + w * P_teacher(FAKE)", min=0, max=1
    )
    ema: float = _f(
        0.0,
        "weight averaging: momentum of an exponential moving average of the weights, updated every step, used "
        "for validation and saved in best.keras (e.g. 0.99); 0 = off",
        min=0,
        max=0.99999,
    )
    jit_compile: str = _f(
        "auto",
        "XLA-compile the training step: auto = Keras' choice (XLA on GPUs, not on CPUs); on; off",
        choices=("auto", "on", "off"),
    )
    early_stopping: int = _f(0, "stop after this many epochs without improving monitor; 0 = off", min=0, max=100_000)
    monitor: str = _f("val_accuracy", "metric that picks best.keras", choices=("val_accuracy", "val_auc", "val_loss"))
    seed: int = _f(0, "seed of weights, shuffling and augmentation (CPU runs are reproducible)", min=0, max=SEED_MAX)
    mixed_precision: str = _f(
        "auto",
        "compute precision: auto = float16 on GPUs of compute capability >= 7.0, bfloat16 on CPUs with AMX-BF16 or "
        "AVX512-BF16, else float32; fp16 / bf16 force one (weights and the P(FAKE) output stay float32); off = "
        "float32; on = the old spelling of fp16-on-GPU (float32 on a CPU), removed in the next release (base/renames.py)",
        choices=("auto", "off", "fp16", "bf16", "on"),
    )
    distribute: str = _f(
        "auto",
        "auto = multi_worker when TF_CONFIG lists 2+ tasks, else mirrored over 2+ GPUs, else one device; "
        "mirrored = MirroredStrategy over this machine's GPUs; multi_worker = MultiWorkerMirroredStrategy from "
        "TF_CONFIG; none",
        choices=("auto", "none", "mirrored", "multi_worker"),
    )
    cluster_timeout: float = _f(
        600.0,
        "multi-worker training: seconds to wait for the chief and the other workers before giving up (exit 2)",
        min=1.0,
        max=86_400.0,
    )
    threads: int = _f(0, "CPU threads for TensorFlow ops; 0 = all cores", min=0, max=1024)
    tensorboard: bool = _f(True, "write TensorBoard event files to RUN_DIR/tensorboard (tensorboard --logdir runs)")
    tensorboard_graph: bool = _f(False, "also write the model graph for TensorBoard's Graphs tab (slower first step)")


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
            text = f.metadata["help"]
            if choices := f.metadata.get("choices"):
                text += f" [one of: {'|'.join(map(str, choices))}]"
            bounds = [
                f"{op} {f.metadata[k]:g}" for k, op in (("min", ">="), ("gt", ">"), ("max", "<=")) if k in f.metadata
            ]
            if bounds:
                text += f" [{', '.join(bounds)}]"
            rows.append((f"{section}.{f.name}", yaml_scalar(default), text))
    return rows


def reference_markdown() -> str:
    """docs/config.md: every key as a Markdown table, from the same fields as ``reference()``.

    A test keeps the committed page equal to this text; regenerate it with
    ``cifake config --reference --markdown > docs/config.md``.
    """
    lines = [
        "# Configuration keys",
        "",
        "Generated by `cifake config --reference --markdown` (a test keeps this page equal to the code).",
        "Precedence: built-in defaults < `--config FILE.yaml` < `key=value` overrides on the command line.",
        "Without `--config`, `cifake train` and `cifake config` read the default recipe",
        "(`configs/small_cnn.yaml`, shipped in the package as `cifake/recipes/small_cnn.yaml`): one default,",
        "the same with and without `--config`. The defaults below are what a key is when no recipe sets it.",
        "",
        "| key | default | meaning |",
        "|---|---|---|",
    ]
    for key, default, text in reference():
        cell = text.replace("|", "\\|")
        lines.append(f"| `{key}` | `{default}` | {cell} |")
    return "\n".join(lines) + "\n"


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_RUN_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .+=,@-]{0,99}$")
RUN_NAME_RULE = "one folder name: letters, digits, space and _ . + = , @ - (no / or \\, not starting with . or -), at most 100 characters"


def check_run_name(value: str, key: str = "train.name") -> str:
    """``value`` if it is a safe run-directory name; a ConfigError otherwise (``../x``, ``/abs``, ``a/b``)."""
    if not _RUN_NAME_RE.match(value):
        raise ConfigError(f"{key}: got {_short(value)}; a run name is {RUN_NAME_RULE}")
    return value


def _short(value: Any, width: int = 60) -> str:
    """repr of a value, cut to ``width`` characters (a hostile config may hold a huge one)."""
    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxdict, r.maxstring, r.maxother, r.maxlong = 2, 6, 6, width, width, 40
    text = r.repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _coerce(key: str, value: Any, typ: Any, meta: dict) -> Any:
    """Return ``value`` as ``typ`` or raise ConfigError with a line saying what is allowed."""

    def bad(allowed: str) -> ConfigError:
        return ConfigError(f"{key}: got {_short(value)} ({type(value).__name__}); expected {allowed}")

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
        try:
            value = float(value)
        except OverflowError:  # an integer too large for a float
            raise bad("a finite number") from None
        if not math.isfinite(value):
            raise bad("a finite number (not .inf or .nan)")
    elif typ is str:
        if isinstance(value, bool) and {"on", "off"} & set(meta.get("choices", ())):
            value = "on" if value else "off"  # YAML 1.1 reads an unquoted on/off as a boolean
        if not isinstance(value, str):
            raise bad("a string")
        if "\0" in value:
            raise bad("a string without NUL characters")
    elif typing.get_origin(typ) is list and typing.get_args(typ) == (str,):
        if not isinstance(value, list) or any(not isinstance(v, str) or not v or "\0" in v for v in value):
            raise bad("a list of folder paths, e.g. [fakes/gan, fakes/vae]")
        if len(value) > meta.get("max_len", len(value)):
            raise bad(f"at most {meta['max_len']} entries")
        return value
    elif typing.get_origin(typ) is list:
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise bad("a list of integers, e.g. [32, 64]")
        if any(v < 1 for v in value):
            raise bad("a list of positive integers")
        if len(value) > meta.get("max_len", len(value)):
            raise bad(f"at most {meta['max_len']} entries")
        if "max" in meta and any(v > meta["max"] for v in value):
            raise bad(f"entries <= {meta['max']}")
        return value
    if meta.get("run_name") and value:
        check_run_name(value, key)
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(
            f"{key}: got {_short(value)}; expected one of {', '.join(choices)}.{_suggest(str(value)[:100], list(choices))}"
        )
    for rule, ok, word in (
        ("min", lambda v, r: v >= r, ">="),
        ("max", lambda v, r: v <= r, "<="),
        ("gt", lambda v, r: v > r, ">"),
    ):
        if rule in meta and not ok(value, meta[rule]):
            raise ConfigError(f"{key}: got {_short(value)}; expected a value {word} {meta[rule]}")
    return value


def _apply(cfg: Config, key: str, value: Any, problems: list[str]) -> None:
    section, _, name = key.partition(".")
    if section not in SECTIONS or not name or "." in name:
        problems.append(
            f"{_short(key)} is not a valid key.{_suggest(key[:100], all_keys())} (see: cifake config --reference)"
        )
        return
    cls = SECTIONS[section]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        problems.append(
            f"{_short(key)} is not a valid key.{_suggest(key[:100], all_keys())} (see: cifake config --reference)"
        )
        return
    hints = typing.get_type_hints(cls)
    try:
        value = _coerce(key, value, hints[name], fields[name].metadata)
    except ConfigError as e:
        problems.extend(e.problems)
        return
    renames.warn(key, value)  # an old spelling still works for a release, and says so
    setattr(getattr(cfg, section), name, value)


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


def _expanded_size(root: yaml.Node) -> int:
    """Nodes the document would have once every alias is expanded; refuses cycles.

    PyYAML shares aliased nodes, so composing is cheap, but anything that walks or prints the
    result (validation, error messages, to_yaml) pays the expanded size: nine levels of ten
    aliases is a billion nodes ("billion laughs") from a 1 KB file.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            active.discard(id(node))
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), 1 << 62)
            continue
        if id(node) in active:
            raise ConfigError("a YAML alias refers to itself (a recursive structure)")
        active.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in active:
                raise ConfigError("a YAML alias refers to itself (a recursive structure)")
            stack.append((child, False))
    return sizes[id(root)]


def safe_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` with bounds: at most YAML_MAX_NODES nodes after alias expansion, no cycles,
    no nesting deep enough to exhaust the stack. Every failure is a one-line ConfigError."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            size = _expanded_size(node)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        if size > limits.YAML_MAX_NODES:
            raise ConfigError(
                f"{where}: the YAML expands to over {limits.YAML_MAX_NODES:,} values through its aliases "
                "(&anchor/*alias); a cifake config has about 50: write the values out"
            )
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{where}: the YAML is nested too deeply") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict:
    """Load a YAML mapping; every failure is a one-line UserError naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path} (check the path; recipes live in configs/)")
    try:
        with open(path, "rb") as f:
            raw = f.read(limits.CONFIG_MAX_BYTES + 1)
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror}") from None
    if len(raw) > limits.CONFIG_MAX_BYTES:
        raise ConfigError(f"{path}: over {limits.CONFIG_MAX_BYTES // 1024} KB; a cifake config is a few lines of YAML")
    try:
        data = safe_yaml(raw.decode("utf-8"), str(path))
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
        raise ConfigError(f"override {_short(text)} is not key=value (example: train.epochs=3)")
    if len(text) > 10_000:
        raise ConfigError(f"override {_short(text)} is over 10,000 characters")
    try:
        value = safe_yaml(raw, f"override {key.strip()[:60]}") if raw.strip() else ""
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
        if not cfg.train.name:  # the file's stem, made safe as a folder name
            cfg.train.name = re.sub(r"[^A-Za-z0-9_ .+=,@-]", "_", Path(path).stem).lstrip(".-")[:100] or "run"
    for text in overrides:
        try:
            key, value = parse_override(text)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        _apply(cfg, key, value, problems)
    if cfg.augment.jpeg_quality_min > cfg.augment.jpeg_quality_max:
        problems.append(
            f"augment.jpeg_quality_min ({cfg.augment.jpeg_quality_min}) is above augment.jpeg_quality_max "
            f"({cfg.augment.jpeg_quality_max})"
        )
    if cfg.augment.ease_off_epochs > cfg.train.epochs:
        problems.append(
            f"augment.ease_off_epochs ({cfg.augment.ease_off_epochs}) is more than train.epochs ({cfg.train.epochs})"
        )
    if problems:
        raise ConfigError(problems)
    if not cfg.train.name:
        cfg.train.name = cfg.model.name
    return cfg


def resolve(source: Config | str | Path | None = None, **overrides: Any) -> Config:
    """A Config for Python callers: a recipe file (or a Config, or None for the defaults) with keyword
    overrides, checked as the command line checks ``key=value``:
    ``resolve("configs/fast.yaml", epochs=3, filters=[16, 32])``. A keyword is a key's name where it
    is unique among the sections (``epochs``, ``filters``, ``val_fraction``), or ``section__name``
    (``train__name``) where it is not."""
    cfg = source if isinstance(source, Config) else load_config(source)
    if not overrides:
        return cfg
    fields = {s: {f.name for f in dataclasses.fields(cls)} for s, cls in SECTIONS.items()}
    base = config_from_dict(cfg.to_dict())
    problems: list[str] = []
    for word, value in overrides.items():
        section, _, name = word.partition("__")
        if not name:
            owners = [s for s, names in fields.items() if word in names]
            if len(owners) != 1:
                where = " or ".join(f"{s}__{word}" for s in owners) if owners else "a key of cifake config --reference"
                problems.append(f"{word}: {'ambiguous' if owners else 'not a key'}; write {where}")
                continue
            section, name = owners[0], word
        _apply(base, f"{section}.{name}", value, problems)
    if problems:
        raise ConfigError(problems)
    base.train.name = base.train.name or cfg.train.name
    return base


def config_from_dict(data: dict) -> Config:
    """Rebuild a Config from ``to_dict()`` output (a run's config.yaml); unknown keys are errors."""
    cfg = Config()
    problems: list[str] = []
    for key, value in _flatten({k: v for k, v in data.items() if k in SECTIONS}, "config", problems).items():
        _apply(cfg, key, value, problems)
    if problems:
        raise ConfigError(problems)
    return cfg
