"""Compile, fit, checkpoint and resume: one run directory per ``cifake train``.

Crash safety without a separate state file: at each epoch end the trainer writes, each atomically
(temporary file + rename), ``best.keras`` (if improved), then ``results.csv``, then ``last.keras``.
``last.keras`` carries the optimizer's step counter, so on resume the number of completed epochs is
``iterations // steps_per_epoch`` and ``results.csv`` is cut back to that many rows. A SIGKILL at
any instant therefore resumes to the same rows an uninterrupted run writes. ``metrics.json`` is
written last and marks the run finished.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .config import Config, config_from_dict, load_config, read_yaml
from .devices import build_for_replicas, cluster_from_env, setup_devices
from .errors import UserError
from .models import describe_macs, float32_copy, macs
from .progress import duration, progress_callback
from .rundir import (
    COLUMNS,
    METRICS,
    atomic_save,
    atomic_write_text,
    check_same_data,
    new_run_dir,
    read_results,
    versions_header,
    write_data_info,
    write_results,
)
from .schedule import lr_callback
from .tfutil import import_keras

RESUMABLE_KEYS = {"train.epochs", "train.early_stopping", "train.threads", "data.dir", "data.cache"}


# --- optimizer, compile ---------------------------------------------------------------------------


def make_optimizer(cfg):
    keras = import_keras()

    t = cfg.train
    # train.ema: Keras keeps the average in the optimizer, so last.keras carries it and resume is exact
    ema = {"use_ema": True, "ema_momentum": t.ema} if t.ema else {}
    if t.optimizer == "adam":
        return keras.optimizers.Adam(t.lr, **ema)
    if t.optimizer == "adamw":
        return keras.optimizers.AdamW(t.lr, weight_decay=t.weight_decay, **ema)
    return keras.optimizers.SGD(t.lr, momentum=t.momentum, nesterov=True, weight_decay=t.weight_decay or None, **ema)


def compile_model(model, cfg) -> None:
    keras = import_keras()

    model.compile(
        optimizer=make_optimizer(cfg),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=cfg.train.label_smoothing),
        metrics=[
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
            keras.metrics.AUC(name="auc"),
        ],
        jit_compile={"auto": "auto", "on": True, "off": False}[cfg.train.jit_compile],
    )


def averaged_weights(model) -> list | None:
    """The model's weights with the trainable ones replaced by the optimizer's moving average (train.ema),
    in ``model.get_weights()`` order; None when the optimizer keeps no average.

    Reads the same optimizer attributes as ``keras.callbacks.SwapEMAWeights``; keras is pinned to the
    tested minor version for this reason.
    """
    opt = model.optimizer
    if not getattr(opt, "use_ema", False) or not hasattr(opt, "_model_variables_moving_average"):
        return None
    average = {id(v): a for v, a in zip(opt._trainable_variables, opt._model_variables_moving_average, strict=True)}
    return [average.get(id(v), v).numpy() for v in model.weights]


def new_model(cfg, train_images):
    """The model of a new run, built, initialised (``model.init``, else a whitening stem fitted to
    ``train_images``) and compiled: what ``cifake train`` and the benchmarks start from."""
    from .models import build_model
    from .whiten import fit_whitening

    model = build_model(cfg.model)
    if cfg.model.init:
        init_from(model, cfg.model.init)
    elif cfg.model.stem == "whiten":
        fit_whitening(model, train_images, cfg.train.seed)
    compile_model(model, cfg)
    return model


def training_batches(cfg, split, epochs: int, initial_epoch: int = 0):
    """``data.train_dataset`` with every augment.* key of ``cfg`` applied, for epochs initial_epoch..epochs-1."""
    from .data import train_dataset

    a = cfg.augment
    return train_dataset(
        split,
        cfg.train.batch_size,
        seed=cfg.train.seed,
        epochs=epochs,
        initial_epoch=initial_epoch,
        flip=a.flip,
        alternate_flip=a.alternate_flip,
        shift=a.shift,
        robust=a,
    )


def is_better(monitor: str, value: float, best: float | None) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if monitor == "val_loss" else value > best


def best_of(rows: list[dict[str, float]], monitor: str) -> tuple[float | None, int]:
    """(best monitor value, epochs since it) over ``rows``; recomputed from results.csv on resume."""
    best, since = None, 0
    for row in rows:
        if is_better(monitor, row[monitor], best):
            best, since = row[monitor], 0
        else:
            since += 1
    return best, since


# --- the fit loop --------------------------------------------------------------------------------


def stages(cfg: Config, initial_epoch: int) -> list[tuple[int, int]]:
    """[(first epoch, end epoch)] still to run: one stage, or two when a backbone starts frozen."""
    freeze = cfg.model.freeze_epochs
    if initial_epoch < freeze < cfg.train.epochs:
        return [(initial_epoch, freeze), (freeze, cfg.train.epochs)]
    return [(initial_epoch, cfg.train.epochs)] if initial_epoch < cfg.train.epochs else []


def set_backbone_frozen(model, frozen: bool, cfg: Config, step: int) -> None:
    """Freeze or unfreeze a pretrained backbone (a nested keras.Model layer) and recompile if it changed.

    A recompile makes a fresh optimizer; its step counter is set to ``step`` so that resume keeps
    counting completed epochs from it.
    """
    keras = import_keras()
    backbone = next((layer for layer in model.layers if isinstance(layer, keras.Model)), None)
    if backbone is None or backbone.trainable == (not frozen):
        return
    backbone.trainable = not frozen
    compile_model(model, cfg)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(step)
    print(f"backbone {'frozen' if frozen else 'unfrozen: fine-tuning all layers'} from step {step}", flush=True)


def _callback(run_dir: Path, cfg: Config, rows: list[dict[str, float]]):
    keras = import_keras()

    class RunLogger(keras.callbacks.Callback):
        """At epoch end: print a line, write best.keras, results.csv, last.keras atomically (that order)."""

        def __init__(self):
            super().__init__()
            self.best, self.since = best_of(rows, cfg.train.monitor)
            self.stopped_early = False
            self.diverged = ""  # "nan" or "inf" when the training loss stopped being finite

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            self.session = getattr(self, "session", [])  # seconds of the epochs run by this process: the ETA

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            row = {"epoch": epoch + 1, **{c: float(logs.get(c, float("nan"))) for c in COLUMNS[1:-2]}}
            row["lr"] = float(self.model.optimizer.learning_rate.numpy())
            row["seconds"] = time.perf_counter() - self.t0
            if not math.isfinite(row["loss"]):  # nothing of this epoch is kept: the weights are garbage
                self.diverged = str(row["loss"])
                self.model.stop_training = True
                return
            if is_better(cfg.train.monitor, row[cfg.train.monitor], self.best):
                self.best, self.since = row[cfg.train.monitor], 0
                # portable (float32 compute), with the averaged weights that were just validated (train.ema)
                atomic_save(float32_copy(self.model, averaged_weights(self.model)), run_dir / "best.keras")
                mark = " *"
            else:
                self.since += 1
                mark = ""
            rows.append(row)
            write_results(run_dir / "results.csv", rows)
            atomic_save(self.model, run_dir / "last.keras")
            self.session.append(row["seconds"])
            left = cfg.train.epochs - (epoch + 1)
            eta = f"  ETA {duration(sum(self.session) / len(self.session) * left)}" if left else ""
            print(format_row(row, cfg.train.epochs) + mark + eta, flush=True)
            if cfg.train.early_stopping and self.since >= cfg.train.early_stopping:
                print(f"early stopping: {cfg.train.monitor} has not improved for {self.since} epochs", flush=True)
                self.stopped_early = True
                self.model.stop_training = True

    return RunLogger()


def format_row(row: dict[str, float], epochs: int) -> str:
    short = {"loss": "loss", "accuracy": "acc", "precision": "prec", "recall": "rec", "auc": "auc"}

    def part(prefix: str) -> str:
        return " ".join(f"{short[m]} {row[prefix + m]:.4f}" for m in METRICS)

    return f"epoch {int(row['epoch']):>3}/{epochs}  {part('')}  | val {part('val_')}  lr {row['lr']:.2e}  {row['seconds']:.1f}s"


def train(cfg: Config, run_dir: Path | None = None, *, resume: bool = False, config_changed: bool = False) -> Path:
    """Train ``cfg`` into ``run_dir`` (a new runs/NAME when None); return the run directory.

    With ``resume``, continue ``run_dir`` from its last completed epoch (see module docstring);
    ``config_changed``: the resumable keys changed, so config.yaml is rewritten. Everything that can
    refuse the run (TF_CONFIG, data, model shape) is checked before a new run directory exists, so a
    failed start leaves nothing behind. Under multi-worker training only the chief writes the run
    directory; the other workers write to a temporary folder that they remove.
    """
    cluster = cluster_from_env(cfg.train.distribute)  # a malformed TF_CONFIG fails before anything else
    if cluster and cfg.train.batch_size % cluster.tasks:
        raise UserError(
            f"train.batch_size={cfg.train.batch_size} is the global batch and must divide evenly over the "
            f"{cluster.tasks} workers; choose a multiple of {cluster.tasks}"
        )
    chief = cluster is None or cluster.is_chief
    scratch = None if chief else Path(tempfile.mkdtemp(prefix="cifake-worker-"))
    keras = import_keras()
    policy = keras.mixed_precision.global_policy()  # setup_devices sets the run's; the caller keeps its own
    try:
        return _train(cfg, run_dir, resume, config_changed, cluster, scratch)
    finally:
        keras.mixed_precision.set_global_policy(policy)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _train(cfg: Config, run_dir, resume: bool, config_changed: bool, cluster, scratch: Path | None) -> Path:
    keras = import_keras()

    from .data import distribute, eval_dataset, load_splits

    started = time.perf_counter()
    strategy, devices = setup_devices(cfg, cluster)
    keras.utils.set_random_seed(cfg.train.seed)

    t0 = time.perf_counter()
    try:
        splits = load_splits(cfg.data)
    except KeyboardInterrupt:
        print("\ninterrupted while loading the data: nothing was written", file=sys.stderr, flush=True)
        raise
    train_split, val_split = splits["train"], splits["val"]
    bs = cfg.train.batch_size
    steps = math.ceil(len(train_split) / bs)
    data_info = {"train_images": len(train_split), "val_images": len(val_split), "steps_per_epoch": steps}
    if resume:
        run_dir = Path(run_dir)
        check_same_data(run_dir, data_info)

    initial_epoch, rows = 0, []
    with strategy.scope():
        if resume and (run_dir / "last.keras").is_file():
            model = keras.models.load_model(run_dir / "last.keras")
            initial_epoch = min(int(model.optimizer.iterations.numpy()) // steps, cfg.train.epochs)
            rows = read_results(run_dir / "results.csv")[:initial_epoch]
            if scratch is None:
                write_results(run_dir / "results.csv", rows)
        else:
            model = new_model(
                cfg, train_split.images
            )  # a shape Keras cannot build fails here, before the run directory
    if scratch is not None:  # a worker that is not the chief: its copies go to a folder it removes
        run_dir = scratch
        if resume:
            write_results(scratch / "results.csv", rows)
    elif not resume:
        run_dir = new_run_dir(cfg.train.runs_dir, cfg.train.name)
        atomic_write_text(run_dir / "config.yaml", versions_header() + cfg.to_yaml())
        write_data_info(run_dir, data_info)
    elif config_changed:
        atomic_write_text(run_dir / "config.yaml", versions_header() + cfg.to_yaml())
    print(f"run directory: {run_dir}", flush=True)
    print(f"devices: {devices}", flush=True)
    print(
        f"data: {len(train_split):,} train / {len(val_split):,} val images from {cfg.data.dir} ({time.perf_counter() - t0:.1f}s)",
        flush=True,
    )
    if initial_epoch:
        print(f"resuming after epoch {initial_epoch}", flush=True)
    print(f"model: {model.name}, {model.count_params():,} parameters, {describe_macs(macs(model))}", flush=True)

    if strategy.num_replicas_in_sync > 1:
        build_for_replicas(model, strategy)
    callback = _callback(run_dir, cfg, rows)
    extra = [keras.callbacks.SwapEMAWeights()] if cfg.train.ema else []  # validation sees the average
    if cfg.train.tensorboard and importlib.util.find_spec("tensorboard") is None:
        print("note: tensorboard is not installed (pip install tensorboard): no event files", file=sys.stderr)
    elif cfg.train.tensorboard:  # event files: tensorboard --logdir runs
        extra.append(
            keras.callbacks.TensorBoard(
                log_dir=str(run_dir / "tensorboard"), write_graph=cfg.train.tensorboard_graph, update_freq="epoch"
            )
        )
    done_early = resume and cfg.train.early_stopping and callback.since >= cfg.train.early_stopping
    try:
        for start, end in stages(cfg, initial_epoch) if not done_early else []:
            set_backbone_frozen(model, start < cfg.model.freeze_epochs, cfg, start * steps)
            model.fit(
                distribute(
                    lambda start=start, end=end: training_batches(cfg, train_split, end, start),
                    strategy,
                ),
                validation_data=distribute(lambda: eval_dataset(val_split, max(bs, 512)), strategy),
                validation_steps=math.ceil(len(val_split) / max(bs, 512)),
                epochs=end,
                initial_epoch=start,
                steps_per_epoch=steps,
                callbacks=[lr_callback(cfg.train, steps), progress_callback(steps, cfg.train.epochs), callback, *extra],
                shuffle=False,  # the dataset shuffles itself, reproducibly
                verbose=0,  # progress_callback draws the one display
            )
            if callback.diverged:
                raise UserError(
                    f"training diverged: the loss became {callback.diverged} in epoch {len(rows) + 1} "
                    f"(train.lr={cfg.train.lr:g}, train.optimizer={cfg.train.optimizer}); lower train.lr or add "
                    f"train.warmup_epochs. The run is not finished; {run_dir} keeps the epochs before it"
                )
            if callback.stopped_early:
                break
    except KeyboardInterrupt:
        print(
            f"\ninterrupted after {len(rows)} completed epoch(s); saved in {run_dir}. Resume with:\n  cifake train --resume {run_dir}",
            file=sys.stderr,
            flush=True,
        )
        raise

    if scratch is not None:
        print(
            f"worker {cluster.task_index} done after {len(rows)} epoch(s); the chief wrote the run directory",
            flush=True,
        )
        return run_dir
    print("evaluating best.keras on the validation split ...", flush=True)
    final = finish(run_dir, val_split, cfg, rows)
    print(
        f"best {cfg.train.monitor} {final['best_' + cfg.train.monitor.removeprefix('val_')]:.4f} at epoch {final['best_epoch']}; val accuracy {final['accuracy']:.4f}",
        flush=True,
    )
    print(f"run directory: {run_dir} (wall time {duration(time.perf_counter() - started)})", flush=True)
    return run_dir


def init_from(model, source: str) -> None:
    """Copy the weights of ``source`` (a .keras file or run directory, loaded safely) into ``model``."""
    from .detector import load_detector

    try:
        src = load_detector(source, keras_only="model.init")
    except UserError as e:
        raise UserError(f"model.init: {e}") from None
    mine, theirs = model.get_weights(), src.get_weights()
    if len(mine) != len(theirs) or any(a.shape != b.shape for a, b in zip(mine, theirs, strict=False)):
        raise UserError(
            f"model.init: {source} has another architecture ({src.count_params():,} parameters, "
            f"{len(theirs)} weight arrays) than model.* describes ({model.count_params():,}, {len(mine)}): "
            "use the model.* keys of the run it came from"
        )
    model.set_weights(theirs)
    print(f"model: weights initialised from {source}", flush=True)


def finish(run_dir: Path, val_split, cfg: Config, rows: list[dict[str, float]]) -> dict:
    """Evaluate best.keras on validation, write metrics.json (the 'finished' marker) and curves.png."""
    keras = import_keras()

    from .data import eval_dataset

    best = keras.models.load_model(run_dir / "best.keras")
    values = best.evaluate(eval_dataset(val_split, 1024), verbose=0, return_dict=True)
    best_value, _ = best_of(rows, cfg.train.monitor)
    best_epoch = next(int(r["epoch"]) for r in rows if r[cfg.train.monitor] == best_value)
    metrics = {
        "split": "val",
        "images": len(val_split),
        **{k: float(v) for k, v in values.items()},
        f"best_{cfg.train.monitor.removeprefix('val_')}": best_value,
        "best_epoch": best_epoch,
        "epochs_run": len(rows),
        "train_seconds": sum(r["seconds"] for r in rows),
        "parameters": best.count_params(),
        "macs": macs(best),
        "threshold": 0.5,
    }
    try:
        from .plots import training_curves

        training_curves(rows, run_dir / "curves.png", cfg.train.monitor)
    except Exception as e:  # noqa: BLE001 - a figure must not lose a finished run
        print(f"warning: could not draw curves.png ({e})", file=sys.stderr)
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


# --- the subcommand ------------------------------------------------------------------------------


def resolve_resume(run_dir: Path, overrides: list[str]) -> tuple[Config, bool]:
    """(the saved config of ``run_dir`` with overrides, whether it changed); keys outside RESUMABLE_KEYS may not change."""
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.yaml); runs live in runs/")
    if (run_dir / "metrics.json").is_file():
        raise UserError(
            f"{run_dir} already finished (metrics.json exists); to train it longer start a new run from its weights: "
            f"cifake train --config {run_dir}/config.yaml model.init={run_dir} train.epochs=N --name {run_dir.name}-more"
        )
    saved = config_from_dict(read_yaml(run_dir / "config.yaml"))
    cfg = load_config(run_dir / "config.yaml", overrides)
    before, after = saved.to_dict(), cfg.to_dict()
    changed = [f"{s}.{k}" for s in before for k in before[s] if before[s][k] != after[s][k]]
    refused = [k for k in changed if k not in RESUMABLE_KEYS]
    if refused:
        raise UserError(
            f"cannot change {', '.join(refused)} when resuming (only {', '.join(sorted(RESUMABLE_KEYS))} may change)"
        )
    return cfg, bool(changed)
