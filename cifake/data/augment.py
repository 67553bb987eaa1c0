"""Training augmentations in tf.data, per batch, stateless: flip, shift, and the robust ones.

The robust augmentations (``augment.jpeg``, ``blur``, ``resize``, ``noise``, ``color``) train the detector on
the degradations images meet on the web, after Wang et al. (CVPR 2020), who made CNN-image
detectors robust to JPEG and blur by training on random JPEG and blur. Each has a probability
(per image) and a range; they apply to REAL and FAKE images alike, in the order an image meets
them (resampling, blur, sensor noise, then JPEG compression last). Every random draw is seeded by
(train.seed, epoch, step), so a resumed run sees exactly the batches an uninterrupted one would.

Written with TensorFlow ops only, independently of the evaluation battery (``corruptions.py``,
Pillow and NumPy), so that a bug in one cannot flatter the other.
"""

from __future__ import annotations

from ..base.tfutil import import_tf

IMAGE_SIZE = 32


def any_robust(cfg) -> bool:
    return any(p > 0 for p in (cfg.jpeg, cfg.blur, cfg.resize, cfg.noise, cfg.color))


def flip_shift(images, seed, flip: bool, shift: int):
    """Per-image random horizontal flip and translation (reflect padding) on a uint8 batch."""
    tf = import_tf()

    b = tf.shape(images)[0]
    if flip:
        coin = tf.random.stateless_uniform([b], seed=seed) < 0.5
        images = tf.where(coin[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if shift > 0:
        padded = tf.pad(images, [[0, 0], [shift, shift], [shift, shift], [0, 0]], mode="REFLECT")
        offsets = tf.random.stateless_uniform(
            [2, b], seed=seed + tf.constant([0, 1], tf.int64), minval=0, maxval=2 * shift + 1, dtype=tf.int32
        )
        grid = tf.range(IMAGE_SIZE)[None, :]
        images = tf.gather(padded, offsets[0][:, None] + grid, axis=1, batch_dims=1)
        images = tf.gather(images, offsets[1][:, None] + grid, axis=2, batch_dims=1)
    return images


def ease_factor(epoch, total_epochs: int, cfg):
    """The factor on every robust share in (0-based) ``epoch`` of a ``total_epochs`` run: 1, then over the
    last ``cfg.ease_off_epochs`` epochs a linear fall to ``cfg.ease_off_to`` in the last one (a float32
    tensor; ``epoch`` may be a tensor). Depends on the epoch only, so a resumed run eases off alike."""
    tf = import_tf()
    n = cfg.ease_off_epochs
    if n <= 0:
        return tf.constant(1.0, tf.float32)
    first = total_epochs - n  # the first easing epoch
    done = tf.cast(tf.cast(epoch, tf.int64) - first + 1, tf.float32) / float(n)  # 1/n .. 1 while easing
    return tf.clip_by_value(1.0 - (1.0 - float(cfg.ease_off_to)) * done, float(cfg.ease_off_to), 1.0)


def _coin(tf, b, p, seed):
    return tf.random.stateless_uniform([b], seed=seed) < p


def _blur(tf, x, sigma_max: float, p: float, seed):
    """Separable Gaussian blur, sigma ~ U(0.3, sigma_max) (one per batch: a single depthwise kernel
    keeps it cheap), reflect borders, for a share p of the images (float batch)."""
    b = tf.shape(x)[0]
    sigma = tf.random.stateless_uniform([], seed=seed, minval=0.3, maxval=max(sigma_max, 0.31))
    radius = max(1, int(3 * sigma_max + 0.999))
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    w = tf.exp(-0.5 * (taps / sigma) ** 2)
    w = w / tf.reduce_sum(w)
    padded = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    k_rows = tf.tile(tf.reshape(w, [-1, 1, 1, 1]), [1, 1, 3, 1])  # (K, 1, 3, 1)
    k_cols = tf.tile(tf.reshape(w, [1, -1, 1, 1]), [1, 1, 3, 1])  # (1, K, 3, 1)
    out = tf.nn.depthwise_conv2d(padded, k_rows, [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, k_cols, [1, 1, 1, 1], "VALID")
    return tf.where(_coin(tf, b, p, seed + 7)[:, None, None, None], out, x)


def _resize(tf, x, min_size: int, p: float, seed):
    """Down to s x s (s ~ U[min_size, 31], one s per batch) and back up, bicubic, for a share p of images."""
    b = tf.shape(x)[0]
    s = tf.random.stateless_uniform([], seed=seed, minval=min_size, maxval=IMAGE_SIZE, dtype=tf.int32)
    small = tf.image.resize(x, tf.stack([s, s]), "bicubic", antialias=True)
    out = tf.clip_by_value(tf.image.resize(small, [IMAGE_SIZE, IMAGE_SIZE], "bicubic"), 0, 255)
    return tf.where(_coin(tf, b, p, seed + 7)[:, None, None, None], out, x)


def _noise(tf, x, sigma_max: float, p: float, seed):
    b = tf.shape(x)[0]
    sigma = tf.random.stateless_uniform([b], seed=seed, minval=0.0, maxval=sigma_max)
    noise = tf.random.stateless_normal(tf.shape(x), seed=seed + 3) * sigma[:, None, None, None]
    return tf.where(_coin(tf, b, p, seed + 7)[:, None, None, None], x + noise, x)


def _color(tf, x, strength: float, p: float, seed):
    """Brightness (a gain), contrast (about the image's mean grey) and saturation (about each pixel's
    grey), each factor ~ U(1 - strength, 1 + strength) per image, for a share p of the images (float batch).

    The operations of Pillow's ImageEnhance that the evaluation battery applies, written in TensorFlow.
    """
    b = tf.shape(x)[0]
    f = tf.random.stateless_uniform([3, b], seed=seed, minval=1 - strength, maxval=1 + strength)
    grey_weights = tf.constant([0.299, 0.587, 0.114], tf.float32)
    out = x * f[0][:, None, None, None]
    mean = tf.reduce_mean(tf.tensordot(out, grey_weights, 1), axis=[1, 2])[:, None, None, None]
    out = mean + (out - mean) * f[1][:, None, None, None]
    grey = tf.tensordot(out, grey_weights, 1)[..., None]
    out = grey + (out - grey) * f[2][:, None, None, None]
    out = tf.clip_by_value(out, 0, 255)
    return tf.where(_coin(tf, b, p, seed + 7)[:, None, None, None], out, x)


def _jpeg(tf, x_uint8, q_min: int, q_max: int, p: float, seed):
    """Real JPEG re-encoding (TensorFlow's libjpeg) at quality ~ U[q_min, q_max] per image, for a share p."""
    b = tf.shape(x_uint8)[0]
    quality = tf.random.stateless_uniform([b], seed=seed, minval=q_min, maxval=q_max + 1, dtype=tf.int32)
    apply = _coin(tf, b, p, seed + 7)

    def one(args):
        img, q, on = args
        return tf.cond(
            on,
            lambda: tf.image.convert_image_dtype(tf.image.adjust_jpeg_quality(img, q), tf.uint8, saturate=True),
            lambda: img,
        )

    return tf.map_fn(one, (x_uint8, quality, apply), fn_output_signature=tf.uint8)


def robust_batch(images, seed, cfg, scale=1.0):
    """The robust augmentations of ``cfg`` (an AugmentConfig) on a uint8 batch; uint8 out. ``scale``
    (a float or a scalar tensor, see ``ease_factor``) multiplies every share."""
    tf = import_tf()
    x = tf.cast(images, tf.float32)
    if cfg.resize > 0:
        x = _resize(tf, x, cfg.resize_min, cfg.resize * scale, seed + 11)
    if cfg.blur > 0:
        x = _blur(tf, x, cfg.blur_sigma_max, cfg.blur * scale, seed + 23)
    if cfg.color > 0:  # the scene and the camera first, then the sensor noise and the encoder
        x = _color(tf, x, cfg.color_strength, cfg.color * scale, seed + 41)
    if cfg.noise > 0:
        x = _noise(tf, x, cfg.noise_sigma_max, cfg.noise * scale, seed + 37)
    x = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)
    if cfg.jpeg > 0:
        x = _jpeg(tf, x, cfg.jpeg_quality_min, cfg.jpeg_quality_max, cfg.jpeg * scale, seed + 53)
    return tf.ensure_shape(x, [None, IMAGE_SIZE, IMAGE_SIZE, 3])
