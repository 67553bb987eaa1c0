"""cifake's networks trained on a GPU through Keras 3's JAX backend, where TensorFlow cannot be had.

The lent GPU machine has JAX, PyTorch and CUDA 13 but no TensorFlow, and reaches no package index;
TensorFlow 2.21 with its CUDA 12 libraries is gigabytes, far over what can be carried there. cifake's
models are plain Keras layers, so the same builders (``cifake.models.registry``, the whitening stem of
``cifake.models.whiten``) run on Keras' JAX backend; this script replaces the tf.data input pipeline by
NumPy (the recipe's alternating flips, an optional translation) and the step callback by an
equivalent ``LearningRateSchedule``. Saved ``.keras`` files hold built-in layers only, so TensorFlow
loads them on the CPU afterwards (``cifake evaluate``).

    KERAS_BACKEND=jax python3 scripts/gpu_keras_jax.py --pack .gpu/pack --out OUT

Prints one line per epoch and writes ``OUT/gpu_results.json``, the models, and the teacher's P(FAKE)
on every training-split image (``OUT/teacher_p.npy``, in the pack's file order, for distillation).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_PACK: dict = {}


def _decode_range(bounds: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    header, scans, offsets = _PACK["header"], _PACK["scans"], _PACK["offsets"]
    out = np.empty((bounds[1] - bounds[0], 32, 32, 3), np.uint8)
    for j, i in enumerate(range(*bounds)):
        data = header + scans[offsets[i] : offsets[i + 1]]
        out[j] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # Pillow: libjpeg's accurate DCT
    return out


def load_pack(pack: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, train indices, val indices), decoded on every core."""
    from concurrent.futures import ProcessPoolExecutor

    index = np.load(pack / "index.npz")
    _PACK.update(header=(pack / "header.bin").read_bytes(), scans=(pack / "scans.bin").read_bytes())
    _PACK["offsets"] = index["offsets"]
    n = len(index["labels"])
    bounds = [(s, min(n, s + 2000)) for s in range(0, n, 2000)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:  # fork: the workers share _PACK
        images = np.concatenate(list(pool.map(_decode_range, bounds)))
    return images, index["labels"].astype(np.int32), index["train"], index["val"]


def patch_out_tensorflow() -> None:
    """cifake's builders call ``import_tf`` to silence TensorFlow's start-up; there is none here."""
    import cifake.base.tfutil as tfu

    tfu.import_tf = lambda: None
    import cifake.models.registry as models

    models.import_tf = lambda: None


def augmented(x: np.ndarray, epoch: int, coins: np.ndarray, shift: int, rng) -> np.ndarray:
    """The recipe's alternating flip (image i mirrored iff coin(i) xor epoch odd) and, with ``shift``,
    a random translation by up to ``shift`` pixels (reflected borders), as cifake's pipeline does."""
    mirror = coins ^ bool(epoch % 2)
    out = x.copy()
    out[mirror] = out[mirror][:, :, ::-1]
    if shift:
        padded = np.pad(out, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode="reflect")
        dy, dx = rng.integers(0, 2 * shift + 1, size=(2, len(x)))
        grid = np.arange(32)
        rows = (dy[:, None] + grid)[:, :, None]
        cols = (dx[:, None] + grid)[:, None, :]
        out = padded[np.arange(len(x))[:, None, None], rows, cols]
    return out


def train_one(
    name: str, config: str, overrides: list[str], data, out: Path, *, policy: str, shift: int, save: bool,
    on_gpu: bool = False,
):  # fmt: skip
    import keras

    from cifake.config import load_config
    from cifake.models.registry import build_model, describe
    from cifake.models.whiten import fit_whitening

    images, labels, tr, va = data
    x_tr, y_tr = images[tr], labels[tr].astype(np.float32)
    x_va, y_va = images[va], labels[va]
    cfg = load_config(config, overrides)
    t = cfg.train
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(t.seed)
    model = build_model(cfg.model)
    fit_whitening(model, x_tr, t.seed)
    steps = math.ceil(len(x_tr) / t.batch_size)
    total, warm = t.epochs * steps, round(t.warmup_epochs * steps)

    @keras.saving.register_keras_serializable("cifake_gpu")
    class Triangle(keras.optimizers.schedules.LearningRateSchedule):  # schedule.lr_at's triangle
        def __call__(self, step):
            s = keras.ops.cast(step, "float32")
            up = t.lr * (s + 1) / max(1, warm)
            down = t.lr * keras.ops.maximum(0.0, (total - s) / max(1, total - warm))
            return keras.ops.where(s < warm, up, down)

        def get_config(self):
            return {}

    ema = {"use_ema": True, "ema_momentum": t.ema} if t.ema else {}
    opt = keras.optimizers.AdamW(Triangle(), weight_decay=t.weight_decay, **ema)
    if on_gpu:
        return _fit_on_device(name, model, opt, cfg, x_tr, y_tr, x_va, y_va, shift, policy, overrides, config)
    model.compile(
        optimizer=opt,
        loss=keras.losses.BinaryCrossentropy(label_smoothing=t.label_smoothing),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    rng = np.random.default_rng(t.seed)
    coins = rng.random(len(x_tr)) < 0.5
    print(f"[{name}] {describe(model)}; policy {policy}; {t.epochs} epochs of {steps} steps, batch {t.batch_size}")
    t0 = time.perf_counter()
    epochs = []
    for e in range(t.epochs):
        te = time.perf_counter()
        xe = augmented(x_tr, e, coins, shift, rng)
        ta = time.perf_counter() - te
        h = model.fit(xe, y_tr, batch_size=t.batch_size, epochs=e + 1, initial_epoch=e, shuffle=True, verbose=0)
        epochs.append({"epoch": e + 1, "seconds": time.perf_counter() - te, "augment_seconds": ta,
                       "loss": float(h.history["loss"][-1]), "accuracy": float(h.history["accuracy"][-1])})  # fmt: skip
        print(f"[{name}] epoch {e + 1}/{t.epochs} loss {epochs[-1]['loss']:.4f} acc {epochs[-1]['accuracy']:.4f} "
              f"{epochs[-1]['seconds']:.1f}s (augment {ta:.1f}s)", flush=True)  # fmt: skip
    train_s = time.perf_counter() - t0
    p = model.predict(x_va, batch_size=2048, verbose=0).ravel()
    acc = float(((p >= 0.5) == (y_va == 1)).mean())
    row = {
        "name": name, "config": config, "overrides": overrides, "policy": policy, "shift": shift,
        "params": int(model.count_params()), "train_seconds": train_s,
        "first_epoch_seconds": epochs[0]["seconds"], "later_epoch_seconds": float(np.median([r["seconds"] for r in epochs[1:]] or [0])),
        "val_images": len(y_va), "val_accuracy": acc,
        "val_real_called_fake": float((p[y_va == 0] >= 0.5).mean()), "val_fake_recall": float((p[y_va == 1] >= 0.5).mean()),
        "epochs": epochs,
    }  # fmt: skip
    print(f"[{name}] val accuracy {acc:.4f} on {len(y_va):,}; trained in {train_s:.1f}s", flush=True)
    if save:
        keras.mixed_precision.set_global_policy("float32")
        plain = build_model(cfg.model)  # float32, no optimizer: what a user loads
        plain.set_weights(model.get_weights())
        plain.save(out / f"{name}.keras")
        row["saved"] = f"{name}.keras"
    return row, model


def _fit_on_device(name, model, opt, cfg, x_tr, y_tr, x_va, y_va, shift, policy, overrides, config):
    """One ``fit`` over all epochs with the augmentation as layers on the device (random flips, and
    whole-pixel translations: nearest neighbour, reflected borders), so the GPU is not left waiting for
    NumPy; train.ema's average is swapped in by Keras at the end of the fit."""
    import keras

    t = cfg.train
    inp = keras.Input((32, 32, 3))
    x = keras.layers.RandomFlip("horizontal", seed=t.seed)(inp)
    if shift:
        x = keras.layers.RandomTranslation(
            shift / 32, shift / 32, fill_mode="reflect", interpolation="nearest", seed=t.seed
        )(x)
    trainer = keras.Model(inp, model(x))
    trainer.compile(
        optimizer=opt,
        loss=keras.losses.BinaryCrossentropy(label_smoothing=t.label_smoothing),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):  # a line per epoch: a run cut off still shows its pace
            times.append(time.perf_counter() - self.t)
            print(
                f"[{name}] epoch {epoch + 1}/{t.epochs} acc {logs.get('accuracy', 0):.4f} {times[-1]:.1f}s", flush=True
            )

    t0 = time.perf_counter()
    h = trainer.fit(x_tr, y_tr, batch_size=t.batch_size, epochs=t.epochs, shuffle=True, verbose=0, callbacks=[Clock()])
    train_s = time.perf_counter() - t0
    p = model.predict(x_va, batch_size=2048, verbose=0).ravel()
    acc = float(((p >= 0.5) == (y_va == 1)).mean())
    print(f"[{name}] final train acc {h.history['accuracy'][-1]:.4f}; val accuracy {acc:.4f}; {train_s:.1f}s "
          f"(first epoch {times[0]:.1f}s, then {np.median(times[1:]):.2f}s)", flush=True)  # fmt: skip
    return {
        "name": name, "config": config, "overrides": overrides, "policy": policy, "shift": shift, "on_device": True,
        "params": int(model.count_params()), "train_seconds": train_s, "first_epoch_seconds": times[0],
        "later_epoch_seconds": float(np.median(times[1:])), "train_accuracy": float(h.history["accuracy"][-1]),
        "val_images": len(y_va), "val_accuracy": acc,
        "val_real_called_fake": float((p[y_va == 0] >= 0.5).mean()), "val_fake_recall": float((p[y_va == 1] >= 0.5).mean()),
    }, model  # fmt: skip


LEVERS = ["model.filters=[64,128,256]", "train.epochs=40", "train.batch_size=512", "train.lr=6e-3"]
LEVER_PLAN = [  # (name, overrides beyond LEVERS): each lever alone against the first
    ("mid_device_aug", []),
    ("mid_wd5e-3", ["train.weight_decay=5e-3"]),
    ("mid_ema", ["train.ema=0.999"]),
    ("mid_dropout", ["model.dropout=0.3"]),
    ("mid_ls0", ["train.label_smoothing=0.0"]),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", default=".gpu/pack")
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu-out"))
    ap.add_argument("--budget", type=float, default=420, help="seconds; later runs are skipped past it")
    ap.add_argument("--quick", type=int, default=0, help="use only this many images (a dry run on a CPU)")
    ap.add_argument("--plan", choices=("check", "levers"), default="check", help="levers: LEVER_PLAN, one at a time")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {"runs": [], "errors": []}

    def save():
        (out / "gpu_results.json").write_text(json.dumps(results, indent=2) + "\n")

    t0 = time.perf_counter()
    images, labels, tr, va = load_pack(Path(args.pack))  # forks: before JAX starts its threads
    import jax

    results["devices"] = [str(d) for d in jax.devices()]
    results["versions"] = {"jax": jax.__version__}
    if args.quick:
        keep = np.random.default_rng(0).permutation(len(labels))[: args.quick]
        tr, va = np.intersect1d(tr, keep), np.intersect1d(va, keep)
    results["decode_seconds"] = time.perf_counter() - t0
    print(
        f"devices {results['devices']}; decoded {len(labels):,} images in {results['decode_seconds']:.1f}s", flush=True
    )
    patch_out_tensorflow()
    import keras

    results["versions"]["keras"] = keras.__version__
    from cifake.training.devices import choose_precision

    auto, why = choose_precision("auto", [(9, 0)], set())  # what `cifake train` picks on an H200
    results["auto_precision"] = [auto, why]
    data = (images, labels, tr, va)
    e = ["train.epochs=1"] if args.quick else []
    wide = ["model.filters=[96,192,384]", "train.epochs=40", "train.batch_size=512", "train.lr=6e-3"]
    mid = ["model.filters=[64,128,256]", "train.epochs=40", "train.batch_size=512", "train.lr=6e-3"]
    plan = [
        ("default_auto", "configs/small_cnn.yaml", e, auto, 0, True),
        ("default_float32", "configs/small_cnn.yaml", e, "float32", 0, False),
        ("wide_40ep", "configs/small_cnn.yaml", wide + e, auto, 2, True),
        ("mid_40ep", "configs/small_cnn.yaml", mid + e, auto, 2, True),
        ("wide_80ep", "configs/small_cnn.yaml", [*wide[:1], "train.epochs=80", *wide[2:], *e], auto, 2, True),
    ]
    if args.plan == "levers":
        plan = [(n, "configs/small_cnn.yaml", [*LEVERS, *o, *e], auto, 2, False) for n, o in LEVER_PLAN]
    for name, config, overrides, policy, shift, keep_model in plan:
        if time.perf_counter() - started > args.budget:
            results["errors"].append(f"{name}: skipped, past the {args.budget:.0f}s budget")
            continue
        try:
            row, model = train_one(
                name, config, overrides, data, out, policy=policy, shift=shift, save=keep_model,
                on_gpu=args.plan == "levers",
            )  # fmt: skip
            results["runs"].append(row)
            if name.startswith("wide"):  # the teacher: P(FAKE) on every image, mean of the image and its mirror
                p = (model.predict(images, batch_size=4096, verbose=0).ravel()
                     + model.predict(images[:, :, ::-1], batch_size=4096, verbose=0).ravel()) / 2  # fmt: skip
                np.save(out / "teacher_p.npy", p.astype(np.float32))
                results["teacher"] = name
        except Exception as exc:  # noqa: BLE001 - report and go on: one failed run must not cost the others
            traceback.print_exc()
            results["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
        save()
    results["seconds"] = time.perf_counter() - started
    save()
    print(json.dumps({r["name"]: [round(r["val_accuracy"], 4), round(r["train_seconds"], 1)] for r in results["runs"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
