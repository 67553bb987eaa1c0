"""Grad-CAM (Selvaraju et al., 2017): where in an image a Keras detector's FAKE score comes from.

Weight each channel of a late convolutional feature map by the mean gradient of the FAKE logit with
respect to it, sum, keep the positive part, and upscale. The logit (the input of the final sigmoid
Dense) is used rather than P(FAKE), whose gradient vanishes when the model is sure. The target
layer is found automatically — the last layer whose output is a 4-D feature map and which is not
pooling or dropout (a nested backbone counts as one layer) — or named.
"""

from __future__ import annotations

import numpy as np

from ..base.errors import UserError
from ..base.tfutil import import_keras, import_tf

_SKIP = ("Pooling", "Dropout", "ZeroPadding", "Rescaling", "Resizing", "Normalization")


def find_target_layer(model, name: str | None = None):
    keras = import_keras()
    if name:
        try:
            return model.get_layer(name)
        except ValueError:
            names = [layer.name for layer in model.layers if len(layer.output.shape) == 4]
            raise UserError(
                f"{{layer}} {name!r} is not a layer of {model.name}; 4-D layers: {', '.join(names)}",
                options=("layer",),
            ) from None
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.InputLayer) or any(s in type(layer).__name__ for s in _SKIP):
            continue
        if len(layer.output.shape) == 4:
            return layer
    raise UserError(f"{model.name} has no 4-D feature map to explain")


def _split_chain(model, target):
    """(layers up to and including ``target``, layers after it), for a model whose layers form a chain.

    Running layer by layer works for a nested backbone too (a graph-built sub-model cannot expose
    a layer's output that lives inside a nested model).
    """
    layers = model.layers[1:]
    cut = layers.index(target) + 1
    return layers[:cut], layers[cut:]


def gradcam(model, images: np.ndarray, layer_name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(heatmaps (N, h, w) in [0, 1] at the target layer's resolution, P(FAKE) (N,)) for uint8 images.

    A target that is a layer of the model's own graph is read from a second functional model over
    the same layers (any graph: branches such as a residual stem, merges); a nested backbone is run
    layer by layer (``_split_chain``), since its inner tensors are not in the outer graph.
    """
    keras = import_keras()
    tf = import_tf()
    layer = find_target_layer(model, layer_name)
    head = model.layers[-1]
    use_logit = isinstance(head, keras.layers.Dense) and head.units == 1
    x = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        if any(isinstance(sub, keras.Model) for sub in model.layers):  # the target among them
            fmap, last = _run_chain(model, layer, x, tape, use_logit)
        else:
            reader = keras.Model(model.inputs, [layer.output, head.input if use_logit else model.output])
            fmap, last = reader(x, training=False)  # the gradient is taken at this very tensor (any dtype)
        last = tf.cast(last, tf.float32)
        if use_logit:  # the head's pre-sigmoid value: its gradient does not vanish when the model is sure
            score = tf.matmul(last, tf.cast(head.kernel, tf.float32))[:, 0] + tf.cast(head.bias, tf.float32)[0]
        else:
            score = last[:, 0]
    grads = tf.cast(tape.gradient(score, fmap), tf.float32)
    fmap = tf.cast(fmap, tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1)).numpy()
    cam /= np.maximum(cam.max(axis=(1, 2), keepdims=True), 1e-12)
    p = tf.sigmoid(score).numpy() if use_logit else score.numpy()
    return cam, p


def _run_chain(model, layer, x, tape, use_logit: bool):
    """(the target's feature map, float32 and watched; the head's input or the output) for a chain of layers."""
    tf = import_tf()
    before, after = _split_chain(model, layer)
    fmap = x
    for step in before:
        fmap = step(fmap, training=False)
    fmap = tf.cast(fmap, tf.float32)
    tape.watch(fmap)
    last = fmap
    for step in after[:-1] if use_logit else after:
        last = step(last, training=False)
    return fmap, last


def overlay(image: np.ndarray, cam: np.ndarray, size: int = 256) -> np.ndarray:
    """The image upscaled (nearest) to size x size with the heatmap (bilinear, jet) blended on top."""
    import matplotlib

    tf = import_tf()
    big = np.repeat(np.repeat(image, size // image.shape[0], 0), size // image.shape[1], 1).astype(np.float32) / 255
    heat = tf.image.resize(cam[..., None], [size, size], "bilinear").numpy()[..., 0]
    colored = matplotlib.colormaps["jet"](heat)[..., :3]
    return (np.clip(0.55 * big + 0.45 * colored, 0, 1) * 255).astype(np.uint8)
