"""Model registry: ``model.name`` -> builder(ModelConfig) -> keras.Model.

Contract for every builder (see DESIGN.md): input raw RGB pixels (N, 32, 32, 3), values 0..255,
uint8 or float; output P(FAKE), shape (N, 1), float32. Preprocessing lives inside the model and
only built-in Keras layers are used, so a saved ``.keras`` file loads with ``safe_mode=True`` and
predicts without this package.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Callable
from dataclasses import dataclass

from ..base.errors import ConfigError, UserError
from ..base.text import shorten
from ..base.tfutil import import_keras, import_tf
from ..config import ModelConfig

INPUT_SHAPE = (32, 32, 3)
Builder = Callable[[ModelConfig], "object"]


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the registry: the builder, and whether it reads the conv-block keys
    (``model.filters``, ``convs_per_block``, ``stem*``, ``pooling``), which are then checked before a
    build and shown by ``cifake runs``."""

    build: Builder
    blocks: bool = False


REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, *, blocks: bool = False) -> Callable[[Builder], Builder]:
    """``@register("name")`` on a builder ``ModelConfig -> keras.Model`` adds it as ``model.name=name``."""

    def wrap(fn: Builder) -> Builder:
        REGISTRY[name] = ModelSpec(fn, blocks)
        return fn

    return wrap


def model_problems(cfg: ModelConfig) -> list[str]:
    """Why ``cfg`` cannot be built (one line each), checked without TensorFlow; [] when it can.

    Run before a run directory exists, so a bad shape key fails with a line instead of a Keras
    traceback and a config-only run folder.
    """
    if cfg.name not in REGISTRY:
        close = difflib.get_close_matches(cfg.name, list(REGISTRY), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return [f"model.name: got {cfg.name!r}; expected one of {', '.join(sorted(REGISTRY))}.{hint}"]
    if not REGISTRY[cfg.name].blocks:
        return []
    if not cfg.filters:
        return [f"model.filters: got []; {cfg.name} needs at least one conv block, e.g. [32, 64, 128]"]
    size = stem_size(cfg)
    for b in range(1, len(cfg.filters) + 1):
        if cfg.pooling != "none" or cfg.name == "airbench":
            if size < 2:
                return [
                    f"model.filters: {len(cfg.filters)} blocks pool the 32x32 input below 1x1 at block {b} "
                    f"(each block halves it{', after the stride-' + str(cfg.stem_stride) + ' stem' if cfg.stem_filters else ''}); "
                    f"use at most {b - 1} blocks, or model.pooling=none"
                ]
            size //= 2
    return []


def check_model_config(cfg: ModelConfig) -> None:
    """Raise a ConfigError listing ``model_problems(cfg)``, if any (no TensorFlow needed)."""
    if problems := model_problems(cfg):
        raise ConfigError(problems)


def build_model(cfg: ModelConfig):
    """Build ``cfg.name`` from the registry; a config it cannot build is a ConfigError (see model_problems)."""
    check_model_config(cfg)
    import_tf()
    return REGISTRY[cfg.name].build(cfg)


def _input_and_rescale():
    keras = import_keras()

    inputs = keras.Input(INPUT_SHAPE, name="image")
    # uint8 or float 0..255 -> [-1, 1]; Rescaling casts to the compute dtype (float16 under mixed precision).
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    return inputs, x


def _head(x, cfg: ModelConfig):
    from keras import layers

    x = (
        layers.GlobalAveragePooling2D(name="head_pool")(x)
        if cfg.head == "global_avg"
        else layers.Flatten(name="head_flatten")(x)
    )
    for i, units in enumerate(cfg.dense, 1):
        if cfg.dropout:
            x = layers.Dropout(cfg.dropout, name=f"head_dropout{i}")(x)
        x = layers.Dense(units, activation=cfg.activation, name=f"head_dense{i}")(x)
    if cfg.dropout:
        x = layers.Dropout(cfg.dropout, name="head_dropout")(x)
    # float32 output even under mixed precision: probabilities and the loss need the range.
    return layers.Dense(1, activation="sigmoid", dtype="float32", name="p_fake")(x)


def whiten_channels(cfg: ModelConfig) -> int:
    """Output channels of the whitening stem: every direction of a k x k x 3 patch, and its negative."""
    return 2 * 3 * cfg.stem_kernel**2


def stem_size(cfg: ModelConfig) -> int:
    """Side of the feature map after the stem (32 without one)."""
    if cfg.stem == "whiten":
        return (INPUT_SHAPE[0] - cfg.stem_kernel) // cfg.stem_stride + 1
    return -(-INPUT_SHAPE[0] // cfg.stem_stride) if cfg.stem_filters else INPUT_SHAPE[0]  # 'same' rounds up


def _stem(x, cfg: ModelConfig):
    """The first layer (``_first_stem``), and beside it, with ``residual_filters``, the residual stem."""
    out = _first_stem(x, cfg)
    if not cfg.residual_filters:
        return out
    return import_keras().layers.Concatenate(name="stems")([out, _residual_stem(x, cfg)])


def _residual_stem(x, cfg: ModelConfig):
    """Conv-BN-act on ``x`` minus its 3x3 local mean (built-in layers only: the mean is an average pool
    that ignores the padding, so a flat patch, borders included, gives exactly 0), shaped like the first stem."""
    from keras import layers

    high = layers.Subtract(name="residual")([x, layers.AveragePooling2D(3, 1, "same", name="residual_mean")(x)])
    if cfg.stem == "whiten":
        kernel, stride, padding = cfg.stem_kernel, cfg.stem_stride, "valid"
    elif cfg.stem_filters:
        kernel, stride, padding = cfg.kernel_size, cfg.stem_stride, "same"
    else:
        kernel, stride, padding = cfg.kernel_size, 1, "same"
    r = layers.Conv2D(
        cfg.residual_filters, kernel, strides=stride, padding=padding, use_bias=not cfg.batch_norm, name="residual_conv"
    )(high)
    if cfg.batch_norm:
        r = layers.BatchNormalization(momentum=0.9, name="residual_bn")(r)
    return layers.Activation(cfg.activation, name="residual_act")(r)


def _first_stem(x, cfg: ModelConfig):
    """The first layer, ``stem_conv``: learned (Conv-BN-act, when stem_filters > 0) or frozen whitening.

    The whitening kernel starts as zeros here and is fitted to training images by ``whiten.fit_whitening``
    before the first step; saved models carry it as ordinary weights.
    """
    from keras import layers

    if cfg.stem == "whiten":
        x = layers.Conv2D(
            whiten_channels(cfg),
            cfg.stem_kernel,
            strides=cfg.stem_stride,
            padding="valid",
            kernel_initializer="zeros",
            trainable=False,
            name="stem_conv",
        )(x)
        return layers.Activation(cfg.activation, name="stem_act")(x)
    if not cfg.stem_filters:
        return x
    x = layers.Conv2D(
        cfg.stem_filters,
        cfg.kernel_size,
        strides=cfg.stem_stride,
        padding="same",
        use_bias=not cfg.batch_norm,
        name="stem_conv",
    )(x)
    if cfg.batch_norm:
        x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    return layers.Activation(cfg.activation, name="stem_act")(x)


def _conv_unit(x, cfg: ModelConfig, filters: int, b: int, c: int, *, pool_first: bool = False, bn_scale: bool = True):
    """``block{b}_conv{c}`` -> (2x2 max-pool, with ``pool_first``) -> BatchNorm -> activation."""
    from keras import layers

    x = layers.Conv2D(filters, cfg.kernel_size, padding="same", use_bias=not cfg.batch_norm, name=f"block{b}_conv{c}")(
        x
    )
    if pool_first:
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    if cfg.batch_norm:  # momentum 0.9: the statistics settle in tens of steps
        x = layers.BatchNormalization(momentum=0.9, scale=bn_scale, name=f"block{b}_bn{c}")(x)
    return layers.Activation(cfg.activation, name=f"block{b}_act{c}")(x)


@register("small_cnn", blocks=True)
def small_cnn(cfg: ModelConfig):
    """Conv blocks (``filters`` entries, each ``convs_per_block`` x Conv-BN-act, then 2x2 pooling) and a head."""
    keras = import_keras()
    from keras import layers

    inputs, x = _input_and_rescale()
    x = _stem(x, cfg)
    for b, filters in enumerate(cfg.filters, 1):
        for c in range(1, cfg.convs_per_block + 1):
            x = _conv_unit(x, cfg, filters, b, c)
        if cfg.pooling == "max":
            x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        elif cfg.pooling == "avg":
            x = layers.AveragePooling2D(2, name=f"block{b}_pool")(x)
    return keras.Model(inputs, _head(x, cfg), name="small_cnn")


@register("airbench", blocks=True)
def airbench(cfg: ModelConfig):
    """An airbench-shaped net for 32x32 on CPUs: stem, then per ``filters`` entry a block of
    Conv -> 2x2 max-pool -> BN -> act, then ``convs_per_block - 1`` x (Conv -> BN -> act), and a head.

    Pooling straight after the first conv of a block (as airbench does) makes the block's other convs
    run at a quarter of the pixels. BatchNorm learns a shift but no scale (the next conv rescales), as
    in airbench. Under 1M parameters at the widths of configs/.
    """
    keras = import_keras()

    inputs, x = _input_and_rescale()
    x = _stem(x, cfg)
    for b, filters in enumerate(cfg.filters, 1):
        for c in range(1, cfg.convs_per_block + 1):
            x = _conv_unit(x, cfg, filters, b, c, pool_first=c == 1, bn_scale=False)
    return keras.Model(inputs, _head(x, cfg), name="airbench")


@register("notebook_cnn")
def notebook_cnn(cfg: ModelConfig):
    """The Keras-notebook baseline users compare with: Rescaling, 2 x (Conv 32 + MaxPool), Flatten, Dense 64.

    Fixed architecture (``model.*`` shape keys are ignored); kept for the side-by-side benchmark.
    """
    keras = import_keras()
    from keras import layers

    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Rescaling(1 / 255.0, name="rescale")(inputs)
    for b in (1, 2):
        x = layers.Conv2D(32, 3, activation="relu", name=f"block{b}_conv1")(x)
        x = layers.MaxPooling2D(name=f"block{b}_pool")(x)
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dense(64, activation="relu", name="head_dense1")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="p_fake")(x)
    return keras.Model(inputs, outputs, name="notebook_cnn")


def _transfer(cfg: ModelConfig, app: str, name: str):
    """A keras.applications backbone behind an in-model resize, with cifake's head.

    The backbones' own preprocessing layers take 0..255 pixels, so the contract holds. ``weights``
    'imagenet' downloads Keras' no-top file (and fails with a clear message offline); a PATH loads a
    local copy of that file; 'none' starts from scratch.
    """
    from pathlib import Path

    keras = import_keras()
    from keras import layers

    weights = None if cfg.weights == "none" else cfg.weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise ConfigError(
            f"model.weights: got {cfg.weights!r}; expected none, imagenet, or the path of an existing weights file"
        )
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Resizing(cfg.input_size, cfg.input_size, interpolation="bilinear", name="resize")(inputs)
    try:
        backbone = getattr(keras.applications, app)(
            input_shape=(cfg.input_size, cfg.input_size, 3),
            include_top=False,
            weights=weights,
            include_preprocessing=True,
        )
    except Exception as e:  # noqa: BLE001 - urllib/HTTP/OS errors all mean "the weights could not be fetched or read"
        if weights == "imagenet":
            raise UserError(
                f"could not fetch ImageNet weights for {app} ({type(e).__name__}); offline? Download Keras' no-top weights "
                f"file for {app} where the network allows and pass model.weights=PATH, or use model.weights=none"
            ) from None
        raise UserError(
            f"model.weights: could not load {weights} into {app} ({shorten(str(e).splitlines()[0], 160)})"
        ) from None
    if weights is None:
        # The applications use BN momentum 0.99-0.999, tuned for ImageNet-length runs; from scratch on
        # a few hundred steps the moving statistics would still be near their initial values and
        # validation collapses to chance. 0.9 settles within tens of steps, as in small_cnn.
        for layer in backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = 0.9
    x = backbone(x)
    return keras.Model(inputs, _head(x, cfg), name=name)


@register("mobilenet_v3_small")
def mobilenet_v3_small(cfg: ModelConfig):
    """MobileNetV3-Small (keras.applications), input resized to ``model.input_size``."""
    return _transfer(cfg, "MobileNetV3Small", "mobilenet_v3_small")


@register("efficientnet_v2_b0")
def efficientnet_v2_b0(cfg: ModelConfig):
    """EfficientNetV2-B0 (keras.applications), input resized to ``model.input_size``."""
    return _transfer(cfg, "EfficientNetV2B0", "efficientnet_v2_b0")


def float32_copy(model, weights=None):
    """``model`` rebuilt with every layer computing in float32 (the same weights, or ``weights``).

    A run trained under mixed bfloat16/float16 saves its ``best.keras`` through this, so the shipped
    file scores the same on every CPU (no emulated bfloat16 on one without the units) and converts to
    LiteRT, which has no bfloat16 kernels. Returns ``model`` itself when it already computes in
    float32 and no other weights are given.
    """
    keras = import_keras()

    mixed = any(layer.dtype_policy.name != "float32" for layer in _all_layers(model))
    if not mixed and weights is None:
        return model

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone if mixed else None, recursive=True)
    copy.set_weights(model.get_weights() if weights is None else weights)
    return copy


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def macs(model) -> int:
    """Multiply-accumulates of one forward pass of one image: Conv2D, DepthwiseConv2D and Dense layers.

    The figure that decides speed on a CPU (parameters do not: a conv at 32x32 costs 16x one at 8x8).
    Elementwise layers (BN, activations, pooling) are left out, as is usual.
    """
    keras = import_keras()
    layers = keras.layers
    total = 0
    for layer in _all_layers(model):
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense)):
            out = layer.output.shape
            pixels = int(out[1]) * int(out[2]) if len(out) == 4 else 1
            kernel = layer.kernel.shape
            per_output = int(kernel[0]) * int(kernel[1]) * (int(kernel[2]) if len(kernel) == 4 else 1)
            if isinstance(layer, layers.DepthwiseConv2D):
                per_output = int(kernel[0]) * int(kernel[1])
            elif isinstance(layer, layers.Dense):
                per_output = int(kernel[0])
            total += pixels * int(out[-1]) * per_output
    return total


def describe_macs(n: int) -> str:
    return f"{n / 1e6:.2f}M multiply-accumulates per image"


def describe(model) -> str:
    """``656,377 parameters, 23.96M multiply-accumulates per image``."""
    return f"{model.count_params():,} parameters, {describe_macs(macs(model))}"


def summary_text(model) -> str:
    """``model.summary()`` as a string (layer names, output shapes, parameters)."""
    buf = io.StringIO()
    model.summary(print_fn=lambda line, **_: buf.write(line + "\n"))
    return buf.getvalue()
