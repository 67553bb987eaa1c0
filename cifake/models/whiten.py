"""A frozen patch-whitening first layer fitted to training images (``model.stem=whiten``).

After airbench (Jordan, 2024): the first convolution's filters are the eigenvectors of the
covariance of k x k x 3 image patches, each scaled by 1/sqrt(eigenvalue + eps), and their
negatives (so a ReLU after it keeps both signs). Its output has decorrelated, unit-variance
channels from the first step, which is what lets later layers learn at large learning rates. The
layer is a plain ``keras.layers.Conv2D`` (``stem_conv``, ``trainable=False``) whose kernel and bias
are set here, so the saved model still holds built-in layers only and takes raw pixels.

The fit is deterministic: the same images and seed give the same kernel.
"""

from __future__ import annotations

import numpy as np

SAMPLE_PATCHES = 1_000_000  # plenty for a 12x12 (or 48x48, for 4x4 patches) covariance to settle
EPS = 5e-4  # added to the eigenvalues (units of the [-1, 1] pixels the stem sees): bounds the gain


def whitening_weights(images: np.ndarray, kernel: int, stride: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kernel (k, k, 3, 2*3*k*k), bias) of a Conv2D whose output channels are whitened patches.

    ``images`` uint8 (N, 32, 32, 3); a seeded sample of about SAMPLE_PATCHES patches is used. Pixels are taken as the
    model's stem sees them (x / 127.5 - 1). Patches are centred by the bias, so the output has zero
    mean and identity covariance over the sample, up to EPS.
    """
    k = kernel
    positions = ((images.shape[1] - k) // stride + 1) * ((images.shape[2] - k) // stride + 1)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.permutation(len(images))[: max(1, SAMPLE_PATCHES // positions)])
    x = images[pick].astype(np.float64) / 127.5 - 1.0
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    # windows: (n, H', W', 3, k, k) -> patches flattened in Conv2D kernel order (kh, kw, channel)
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k * k * 3)
    mean = patches.mean(axis=0)
    cov = np.cov(patches - mean, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending; eigh is deterministic for the same matrix
    order = eigenvalues.argsort()[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    signs = np.sign(eigenvectors[np.abs(eigenvectors).argmax(axis=0), np.arange(len(order))])
    eigenvectors = eigenvectors * signs  # a fixed sign per vector: the kernel does not flip between machines
    filters = eigenvectors / np.sqrt(np.maximum(eigenvalues, 0) + EPS)
    filters = np.concatenate([filters, -filters], axis=1)  # (k*k*3, 2*k*k*3)
    kernel_array = filters.reshape(k, k, 3, -1).astype(np.float32)
    bias = (-(mean @ filters)).astype(np.float32)
    return kernel_array, bias


def fit_whitening(model, images: np.ndarray, seed: int) -> bool:
    """Set the ``stem_conv`` of a ``model.stem=whiten`` model from ``images``; False when it has none."""
    try:
        stem = model.get_layer("stem_conv")
    except ValueError:
        return False
    if stem.trainable:  # a learned stem: nothing to fit
        return False
    k = stem.kernel_size[0]
    kernel, bias = whitening_weights(images, k, stem.strides[0], seed)
    stem.set_weights([kernel, bias])
    return True
