"""Fakes of generators other than Stable Diffusion 1.4, made here from the REAL training images.

A detector learns the artefacts of the fakes it is shown: CIFAKE's SD 1.4 fakes are sharper than
its CIFAR-10 photos, and a detector trained on them alone calls softer generators' images REAL.
``cifake fakes`` trains small generative models of several families on the REAL images of the
training split (never on validation) and writes their output as JPEGs encoded with the quantisation
tables and chroma subsampling of a CIFAKE file, so that the file format is not the signal:

- ``autoencoder``: reconstructions of real images by a conv autoencoder (hard fakes: same content).
- ``vae``: samples of a convolutional VAE (soft, the blur of a likelihood model).
- ``dcgan``: samples of a DCGAN (transposed-convolution upsampling, GAN artefacts).
- ``diffusion``: real images noised to sigma 0.35 and denoised back in seven Euler steps by a small
  denoising network trained at all noise levels (an SDEdit-style reconstruction: DRCT's hard fakes
  with a diffusion model).

Layout written under ``OUT``::

    OUT/train/FAKE/<generator>/   fakes for data.extra_fake (made from / beside training-split images)
    OUT/val/REAL/                 copies of validation-split REAL files
    OUT/val/FAKE/<generator>/     fakes for evaluation (reconstructions of those validation images,
                                  or fresh samples drawn with another seed)
    OUT/fakes.json                what was made, with which settings, and how long it took

``cifake evaluate RUN --data-dir OUT/val`` then reports each generator's recall and AUC; training
with all generators but one and evaluating on that one is the leave-one-generator-out measurement.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base.errors import UserError
from ..base.files import atomic_write_json
from ..base.progress import duration, say
from ..data.listing import FAKES_MANIFEST as MANIFEST
from ..data.listing import overlaps, real_path

DIFFUSION_SIGMAS = (
    0.35,
    0.25,
    0.17,
    0.11,
    0.07,
    0.04,
    0.02,
)  # the reconstruction's noise levels, in [0, 1] pixel units


@dataclass(frozen=True)
class Family:
    """One generator family: how it is fitted, and whether its fakes reconstruct given images."""

    fit: Callable  # fit(real_float01, epochs, seed) -> make; make(n, rng, source_float01 | None) -> float01
    epochs: int
    reconstructs: bool
    about: str


def _keras():
    from ..base.tfutil import import_keras, import_tf

    return import_tf(), import_keras()


def _train(step, real: np.ndarray, epochs: int, seed: int, batch: int = 128) -> None:
    """Call the compiled training ``step`` on seeded shuffled batches of ``real``, ``epochs`` times
    (one batch of everything when there are fewer images than a batch)."""
    tf, _ = _keras()
    rng = np.random.default_rng(seed)
    n = len(real)
    for _ in range(epochs):
        order = rng.permutation(n)
        for i in range(0, n - batch + 1 if n >= batch else 1, batch):
            step(tf.constant(real[order[i : i + batch]]))


def _predict(fn, x: np.ndarray, batch: int = 500) -> np.ndarray:
    return np.concatenate([np.asarray(fn(x[i : i + batch])) for i in range(0, len(x), batch)])


def _fit_autoencoder(real: np.ndarray, epochs: int, seed: int):
    _, keras = _keras()
    L = keras.layers
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            L.Conv2D(64, 4, strides=2, padding="same", activation="relu"),
            L.Conv2D(128, 4, strides=2, padding="same", activation="relu"),
            L.Conv2DTranspose(64, 4, strides=2, padding="same", activation="relu"),
            L.Conv2DTranspose(3, 4, strides=2, padding="same", activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(real, real, batch_size=128, epochs=epochs, verbose=0, shuffle=True)

    def make(n, rng, source):
        return _predict(lambda b: model(b, training=False), source)

    return make


def _fit_vae(real: np.ndarray, epochs: int, seed: int, latent: int = 128):
    tf, keras = _keras()
    L = keras.layers
    keras.utils.set_random_seed(seed)
    encoder = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            L.Conv2D(64, 4, strides=2, padding="same", activation="relu"),
            L.Conv2D(128, 4, strides=2, padding="same", activation="relu"),
            L.Conv2D(256, 4, strides=2, padding="same", activation="relu"),
            L.Flatten(),
            L.Dense(2 * latent),
        ]
    )
    decoder = keras.Sequential(
        [
            keras.Input((latent,)),
            L.Dense(4 * 4 * 256, activation="relu"),
            L.Reshape((4, 4, 256)),
            L.Conv2DTranspose(128, 4, strides=2, padding="same", activation="relu"),
            L.Conv2DTranspose(64, 4, strides=2, padding="same", activation="relu"),
            L.Conv2DTranspose(3, 4, strides=2, padding="same", activation="sigmoid"),
        ]
    )
    opt = keras.optimizers.Adam(1e-3)
    weights = encoder.trainable_variables + decoder.trainable_variables
    beta = 0.5  # < 1 trades prior fit for sharper samples; a per-pixel sum of squares as the likelihood

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            mu, logvar = tf.split(encoder(x, training=True), 2, axis=-1)
            z = mu + tf.exp(0.5 * logvar) * tf.random.normal(tf.shape(mu))
            recon = tf.reduce_sum(tf.square(decoder(z, training=True) - x), axis=[1, 2, 3])
            kl = -0.5 * tf.reduce_sum(1 + logvar - tf.square(mu) - tf.exp(logvar), axis=-1)
            loss = tf.reduce_mean(recon / 0.05 + beta * kl)
        opt.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))
        return loss

    _train(step, real, epochs, seed)

    def make(n, rng, source):
        z = rng.standard_normal((n, latent)).astype(np.float32)
        return _predict(lambda b: decoder(b, training=False), z)

    return make


def _fit_dcgan(real: np.ndarray, epochs: int, seed: int, latent: int = 100):
    tf, keras = _keras()
    L = keras.layers
    keras.utils.set_random_seed(seed)
    gen = keras.Sequential(
        [
            keras.Input((latent,)),
            L.Dense(4 * 4 * 256, use_bias=False),
            L.BatchNormalization(),
            L.ReLU(),
            L.Reshape((4, 4, 256)),
            L.Conv2DTranspose(128, 4, strides=2, padding="same", use_bias=False),
            L.BatchNormalization(),
            L.ReLU(),
            L.Conv2DTranspose(64, 4, strides=2, padding="same", use_bias=False),
            L.BatchNormalization(),
            L.ReLU(),
            L.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh"),
        ]
    )
    disc = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            L.Conv2D(64, 4, strides=2, padding="same"),
            L.LeakyReLU(0.2),
            L.Conv2D(128, 4, strides=2, padding="same", use_bias=False),
            L.BatchNormalization(),
            L.LeakyReLU(0.2),
            L.Conv2D(256, 4, strides=2, padding="same", use_bias=False),
            L.BatchNormalization(),
            L.LeakyReLU(0.2),
            L.Flatten(),
            L.Dense(1),
        ]
    )
    g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step(x):
        x = x * 2.0 - 1.0
        z = tf.random.normal((tf.shape(x)[0], latent))
        with tf.GradientTape() as dt, tf.GradientTape() as gt:
            fake = gen(z, training=True)
            d_real, d_fake = disc(x, training=True), disc(fake, training=True)
            d_loss = bce(tf.ones_like(d_real) * 0.9, d_real) + bce(tf.zeros_like(d_fake), d_fake)
            g_loss = bce(tf.ones_like(d_fake), d_fake)
        d_opt.apply_gradients(zip(dt.gradient(d_loss, disc.trainable_variables), disc.trainable_variables, strict=True))
        g_opt.apply_gradients(zip(gt.gradient(g_loss, gen.trainable_variables), gen.trainable_variables, strict=True))
        return d_loss, g_loss

    _train(step, real, epochs, seed)

    def make(n, rng, source):
        z = rng.standard_normal((n, latent)).astype(np.float32)
        return _predict(lambda b: gen(b, training=False), z) * 0.5 + 0.5

    return make


def _fit_diffusion(real: np.ndarray, epochs: int, seed: int, sigma_data: float = 0.25):
    """A denoiser D(x, sigma) with EDM's preconditioning (Karras et al., 2022): the network sees the noisy
    image scaled to unit variance and its log noise level, and D mixes its output with the input so
    that even a briefly trained network denoises rather than passing the noise through."""
    tf, keras = _keras()
    L = keras.layers
    keras.utils.set_random_seed(seed)

    def block(x, f):
        x = L.Conv2D(f, 3, padding="same", activation="swish")(x)
        return L.Conv2D(f, 3, padding="same", activation="swish")(x)

    inp = keras.Input((32, 32, 4))  # the scaled noisy image and its log noise level as a fourth channel
    a = block(inp, 48)
    b = block(L.AveragePooling2D(2)(a), 96)
    c = block(L.AveragePooling2D(2)(b), 128)
    u = block(L.Concatenate()([L.UpSampling2D(interpolation="bilinear")(c), b]), 96)
    u = block(L.Concatenate()([L.UpSampling2D(interpolation="bilinear")(u), a]), 48)
    net = keras.Model(inp, L.Conv2D(3, 1)(u))
    opt = keras.optimizers.Adam(1e-3)
    sd2 = sigma_data**2

    def denoise(x, sigma, training):  # x: noisy image centred on 0; returns the clean estimate
        s = sigma[:, None, None, None]
        c_in, c_skip = 1 / tf.sqrt(s**2 + sd2), sd2 / (s**2 + sd2)
        c_out = s * sigma_data / tf.sqrt(s**2 + sd2)
        level = tf.broadcast_to(tf.math.log(s) / 4, tf.concat([tf.shape(x)[:3], [1]], 0))
        return c_skip * x + c_out * net(tf.concat([c_in * x, level], -1), training=training)

    @tf.function
    def step(x):
        x = x - 0.5
        sigma = tf.exp(tf.random.normal((tf.shape(x)[0],), -1.6, 1.0))  # EDM's log-normal noise levels
        noisy = x + sigma[:, None, None, None] * tf.random.normal(tf.shape(x))
        weight = (sigma**2 + sd2) / (sigma * sigma_data) ** 2
        with tf.GradientTape() as tape:
            err = tf.reduce_mean(tf.square(denoise(noisy, sigma, True) - x), axis=[1, 2, 3])
            loss = tf.reduce_mean(weight * err)
        opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables, strict=True))
        return loss

    _train(step, real, epochs, seed)

    def make(n, rng, source):
        def reconstruct(x):
            x = tf.constant(x - 0.5)
            noisy = x + DIFFUSION_SIGMAS[0] * tf.constant(rng.standard_normal(x.shape).astype(np.float32))
            for s, s_next in zip(DIFFUSION_SIGMAS, (*DIFFUSION_SIGMAS[1:], 0.0), strict=True):
                x0 = denoise(noisy, tf.fill((x.shape[0],), s), False)
                noisy = x0 + (s_next / s) * (noisy - x0)  # an Euler step of the probability-flow ODE
            return x0 + 0.5

        return _predict(reconstruct, source)

    return make


FAMILIES: dict[str, Family] = {
    "autoencoder": Family(_fit_autoencoder, 4, True, "reconstructions by a conv autoencoder"),
    "vae": Family(_fit_vae, 10, False, "samples of a convolutional VAE"),
    "dcgan": Family(_fit_dcgan, 12, False, "samples of a DCGAN"),
    "diffusion": Family(_fit_diffusion, 4, True, "SDEdit-style reconstructions by a small denoising diffusion model"),
}


def jpeg_settings(data_dir: str | Path) -> tuple[dict, int, str]:
    """(quantisation tables, chroma subsampling, the file they came from) of the first CIFAKE JPEG found."""
    from PIL import Image, JpegImagePlugin

    for cls in ("REAL", "FAKE"):
        folder = Path(data_dir) / "train" / cls
        for f in sorted(folder.iterdir()) if folder.is_dir() else ():
            if f.suffix.lower() in (".jpg", ".jpeg"):
                try:
                    with Image.open(f) as im:
                        if im.format == "JPEG":
                            return dict(im.quantization), JpegImagePlugin.get_sampling(im), str(f)
                except Exception:  # noqa: BLE001 - an empty or damaged file: the next one has the tables
                    continue
    raise UserError(f"no JPEG under {data_dir}/train/{{REAL,FAKE}} to read the quantisation tables from")


def write_jpegs(images: np.ndarray, folder: Path, prefix: str, qtables: dict, subsampling: int, first: int = 0) -> None:
    """Write uint8 images as ``prefix_00000.jpg`` ... (numbered from ``first``) with the given tables
    (the format of CIFAKE's files)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images, start=first):
        Image.fromarray(im).save(folder / f"{prefix}_{i:05d}.jpg", "JPEG", qtables=qtables, subsampling=subsampling)


class _Scaled:
    """``images[idx]`` as float32 in [0, 1], converted a slice at a time (never the whole set at once)."""

    def __init__(self, images: np.ndarray, idx: np.ndarray):
        self.images, self.idx = images, idx

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, part: slice) -> np.ndarray:
        return self.images[self.idx[part]].astype(np.float32) / 255.0


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8)


def _refuse_taken(out: Path, names: list[str], force: bool) -> None:
    """Refuse, before any work, to replace a generator's existing fakes without ``force``."""
    taken = [out / part / "FAKE" / name for part in ("train", "val") for name in names]
    taken = [t for t in taken if t.is_dir() and any(t.iterdir())]
    if taken and not force:
        raise UserError(
            f"{taken[0]} already holds images (add {{force}} to replace what this run makes)", options=("force",)
        )


MAX_IMAGES = 100_000  # fakes per generator and part: about 300 MB of pixels while a chunk is written
CHUNK = 2_000  # fakes are made and written this many at a time, never all held at once


def read_manifest(out: Path) -> dict | None:
    """``OUT/fakes.json`` as written by cifake fakes, None when absent; anything else is refused."""
    from ..base.limits import read_json_object

    manifest = out / MANIFEST
    if not (manifest.exists() or manifest.is_symlink()):
        return None
    record = read_json_object(manifest, max_bytes=64 << 20)  # None when damaged
    if not isinstance(record, dict) or not isinstance(record.get("generators", {}), dict):
        raise UserError(
            f"{manifest} is damaged (not the JSON object cifake fakes writes): nothing in {out} was changed; "
            "restore it, or choose another {out}",
            options=("out",),
        )
    return record


def _check_out(out: Path, data_dir: str | Path, force: bool, settings: dict, generators: list[str]) -> dict | None:
    """Refuse, before any work, an ``OUT`` that would write into the dataset, or replace files that cifake
    fakes did not write; returns the existing manifest (None for a new folder)."""
    real = real_path(out)
    if overlaps(real, real_path(data_dir)):
        raise UserError(
            f"{{out}} {out} is, holds or lies inside the dataset {data_dir}: fakes written there would be read "
            "as the dataset's own images (and its FAKE folders as fakes to add); choose a folder outside it",
            options=("out",),
        )
    record = read_manifest(out)
    val_real = out / "val" / "REAL"
    if val_real.is_symlink() or (val_real.exists() and not val_real.is_dir()):
        raise UserError(
            f"{val_real} is a link or a file, not a folder cifake fakes wrote: nothing was changed; move it away"
        )
    if not val_real.is_dir():
        return record
    if record is None:
        raise UserError(
            f"{val_real} exists but {out} has no {MANIFEST}: it was not written by cifake fakes and is never "
            "replaced; choose another {out}",
            options=("out",),
        )
    if all(record.get(k) == v for k, v in settings.items()):
        return record  # the same copies for the same settings: kept as they are
    if not force:
        raise UserError(
            f"{val_real} holds the validation copies of other settings ({_settings_text(record, settings)}); the "
            f"evaluation fakes in {out}/val/FAKE were made against them: choose another {{out}}, or add {{force}} "
            "to replace them",
            options=("out", "force"),
        )
    listed = record.get("val_real_files")
    present = sorted(p.name for p in val_real.iterdir())
    if not isinstance(listed, list) or sorted(set(present) - set(listed)):
        extra = sorted(set(present) - set(listed or []))
        raise UserError(
            f"{val_real} holds files cifake fakes did not write ({', '.join(extra[:3]) or 'no list of its own files'}"
            "); they are never replaced, even with --force: move them away or choose another {out}",
            options=("out",),
        )
    stale = sorted(set(record.get("generators", {})) - set(generators))
    if stale:
        raise UserError(
            f"{out} also holds fakes of {', '.join(stale)} made against the old validation copies: remake them in "
            "this run ({generators}) or choose another {out}",
            options=("generators", "out"),
        )
    return record


def _move_into_place(built: Path, final: Path) -> None:
    """Replace ``final`` with the complete folder ``built``: a folder under OUT is whole or absent."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.is_dir():
        shutil.rmtree(final)
    built.rename(final)


def _settings_text(record: dict, settings: dict) -> str:
    return ", ".join(f"{k} {record.get(k)!r} now {v!r}" for k, v in settings.items() if record.get(k) != v)


def make_fakes(
    data_cfg,
    out: str | Path,
    *,
    generators: list[str],
    train_images: int,
    eval_images: int,
    fit_images: int,
    epochs: int | None = None,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Fit each generator on the REAL training-split images and write its fakes (module docstring).

    Everything is built in ``OUT/.fakes.PID.staging`` and moved into place folder by folder once
    complete, so an interrupted run leaves no partial generator folder for ``data.extra_fake`` to read
    (a later run removes the staging folder of a process that is gone)."""
    from ..base.leftovers import remove_dead, temp_name
    from ..data.listing import load_splits

    if not generators:
        raise UserError(
            f"no generator given in {{generators}}; choose from {', '.join(FAMILIES)}", options=("generators",)
        )
    unknown = [g for g in generators if g not in FAMILIES]
    if unknown:
        raise UserError(
            f"unknown generator {unknown[0]!r} in {{generators}}; choose from {', '.join(FAMILIES)}",
            options=("generators",),
        )
    for n, what in ((train_images, "train_images"), (eval_images, "eval_images"), (fit_images, "fit_images")):
        if not 1 <= n <= MAX_IMAGES:
            raise UserError(f"{{{what}}} {n:,}: give 1 to {MAX_IMAGES:,} images per generator", options=(what,))
    out = Path(out)
    settings = {
        "data_dir": str(data_cfg.dir),
        "split_seed": data_cfg.split_seed,
        "val_fraction": data_cfg.val_fraction,
        "seed": seed,
        "val_real": None,  # filled below
    }
    _refuse_taken(out, generators, force)
    qtables, subsampling, table_file = jpeg_settings(data_cfg.dir)
    try:  # before minutes of decoding and training
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"{{out}} {out}: cannot be a folder ({e.strerror}); choose another path", options=("out",)
        ) from None
    splits = load_splits(data_cfg, progress=progress)
    real_train = splits["train"].take(np.flatnonzero(splits["train"].labels == 0))
    real_val = splits["val"].take(np.flatnonzero(splits["val"].labels == 0))
    rng = np.random.default_rng(seed)
    fit_idx = np.sort(rng.choice(len(real_train), min(fit_images, len(real_train)), replace=False))
    fit_x = real_train.images[fit_idx].astype(np.float32) / 255.0
    val_idx = np.sort(rng.choice(len(real_val), min(eval_images, len(real_val)), replace=False))
    settings["val_real"] = len(val_idx)
    previous = _check_out(out, data_cfg.dir, force, settings, generators)
    keep_val_real = previous is not None and all(previous.get(k) == v for k, v in settings.items())
    remove_dead(out / "fakes", "staging")
    staging = temp_name(out / "fakes", "staging")
    manifest = out / MANIFEST
    names = [Path(real_val.paths[i]).name for i in val_idx]
    record = {
        **settings,
        "jpeg_tables_from": table_file,
        "subsampling": subsampling,
        "fit_images": len(fit_idx),
        "val_real_files": names,
        "generators": (previous or {}).get("generators", {}) if keep_val_real else {},
    }
    try:
        if not (out / "val" / "REAL").is_dir() or not keep_val_real:
            (staging / "REAL").mkdir(parents=True)
            for i, name in zip(val_idx, names, strict=True):
                shutil.copy2(real_val.paths[i], staging / "REAL" / name)
            _move_into_place(staging / "REAL", out / "val" / "REAL")
        atomic_write_json(manifest, record)
        for name in generators:
            record["generators"][name] = _make_one(
                name, fit_x, real_train, real_val, val_idx, staging, out, qtables, subsampling,
                train_images=train_images, eval_images=eval_images, epochs=epochs, seed=seed,
            )  # fmt: skip
            atomic_write_json(manifest, record)  # after each: what is there
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record


def _make_one(
    name,
    fit_x,
    real_train,
    real_val,
    val_idx,
    staging,
    out,
    qtables,
    subsampling,
    *,
    train_images,
    eval_images,
    epochs,
    seed,
) -> dict:
    """Fit generator ``name``, write its training and evaluation fakes, move both folders into place."""
    fam = FAMILIES[name]
    index = list(FAMILIES).index(name)
    n_epochs = epochs or fam.epochs
    t0 = time.perf_counter()
    say(f"fakes: fitting {name} ({fam.about}) on {len(fit_x):,} REAL training images, {n_epochs} epoch(s)")
    make = fam.fit(fit_x, n_epochs, seed + 1000 * (index + 1))
    fit_s = time.perf_counter() - t0
    gen_rng = np.random.default_rng([seed, index])
    written = {}
    for part, n, pool in (("train", train_images, real_train), ("val", eval_images, real_val)):
        source = None
        if fam.reconstructs:
            # training fakes rebuild training images; evaluation fakes rebuild the copied validation REALs
            idx = val_idx if part == "val" else np.sort(gen_rng.choice(len(pool), min(n, len(pool)), replace=False))
            source = _Scaled(pool.images, idx)
            n = len(idx)
        written[part] = 0
        for start in range(0, n, CHUNK):  # made and written a chunk at a time: memory stays bounded
            count = min(CHUNK, n - start)
            chunk = None if source is None else source[start : start + count]
            images = to_uint8(make(count, gen_rng, chunk))
            write_jpegs(images, staging / part / name, name, qtables, subsampling, start)
            written[part] += len(images)
    for part in ("train", "val"):
        _move_into_place(staging / part / name, out / part / "FAKE" / name)
    took = time.perf_counter() - t0
    say(f"fakes: {name} done in {duration(took)} -> {out / 'train' / 'FAKE' / name}, {out / 'val' / 'FAKE' / name}")
    return {
        "about": fam.about,
        "epochs": n_epochs,
        "train_images": written["train"],
        "eval_images": written["val"],
        "fit_seconds": round(fit_s, 1),
        "seconds": round(took, 1),
    }
