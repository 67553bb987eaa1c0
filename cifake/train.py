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
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .config import Config, config_from_dict, load_config, read_yaml
from .detector import load_model_file
from .devices import build_for_replicas, cluster_from_env, setup_devices
from .errors import UserError
from .models import describe, float32_copy, macs
from .progress import duration, progress_callback
from .rundir import (
    COLUMNS,
    METRICS,
    atomic_save,
    atomic_write_json,
    atomic_write_text,
    check_same_data,
    new_run_dir,
    read_results,
    versions_header,
    write_data_info,
    write_results,
)
from .schedule import lr_callback
from .text import shorten
from .tfutil import import_keras

RESUMABLE_KEYS = {
    "train.epochs",
    "train.early_stopping",
    "train.threads",
    "train.cluster_timeout",
    "data.dir",
    "data.cache",
}


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
    from .pipelines import train_dataset

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
    from .layout import inside_image_folders

    if not resume and inside_image_folders(cfg.train.runs_dir, cfg.data.dir):
        raise UserError(
            f"train.runs_dir={cfg.train.runs_dir} is inside the dataset's image folders ({cfg.data.dir}): the run's "
            "figures would be read as images next time; choose a folder outside them"
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

    started = time.perf_counter()
    strategy, devices = setup_devices(cfg, cluster)
    keras.utils.set_random_seed(cfg.train.seed)
    t0 = time.perf_counter()
    train_split, val_split, data_info = _load_data(cfg)
    steps = data_info["steps_per_epoch"]
    if resume:
        run_dir = Path(run_dir)
        check_same_data(run_dir, data_info)
    with strategy.scope():
        model, initial_epoch, rows = _model_and_history(cfg, run_dir if resume else None, train_split, steps, scratch)
    run_dir = _prepare_run_dir(cfg, run_dir, resume, config_changed, scratch, data_info, rows)
    print(f"run directory: {run_dir}", flush=True)
    print(f"devices: {devices}", flush=True)
    print(
        f"data: {len(train_split):,} train / {len(val_split):,} val images from {cfg.data.dir} ({time.perf_counter() - t0:.1f}s)",
        flush=True,
    )
    if initial_epoch:
        print(f"resuming after epoch {initial_epoch}", flush=True)
    print(f"model: {model.name}, {describe(model)}", flush=True)

    if strategy.num_replicas_in_sync > 1:
        build_for_replicas(model, strategy)
    callback = _callback(run_dir, cfg, rows)
    try:
        _fit(cfg, model, strategy, train_split, val_split, initial_epoch, callback, run_dir, rows)
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


def _load_data(cfg: Config):
    """(train split, val split, data info for data.json); Ctrl-C here leaves nothing written."""
    from .data import load_splits, split_info

    try:
        splits = load_splits(cfg.data)
    except KeyboardInterrupt:
        print("\ninterrupted while loading the data: nothing was written", file=sys.stderr, flush=True)
        raise
    train_split, val_split = splits["train"], splits["val"]
    steps = math.ceil(len(train_split) / cfg.train.batch_size)
    return train_split, val_split, {**split_info(splits), "steps_per_epoch": steps}


def _model_and_history(cfg: Config, resume_dir: Path | None, train_split, steps: int, scratch: Path | None):
    """(model, epochs already done, their results.csv rows): from last.keras when resuming, else a new model.

    Call inside the strategy's scope. On resume, the run's files must agree: last.keras loads, holds
    the architecture config.yaml describes, and results.csv has a row for every epoch it completed
    (results.csv is then cut back to those rows).
    """
    if resume_dir is not None:
        last = resume_dir / "last.keras"
        if last.exists() or last.is_symlink():
            model = _load_last(last, cfg)
            initial_epoch = min(int(model.optimizer.iterations.numpy()) // steps, cfg.train.epochs)
            rows = read_results(resume_dir / "results.csv")
            if len(rows) < initial_epoch:
                raise UserError(
                    f"{resume_dir}: last.keras has completed {initial_epoch} epoch(s) but results.csv holds "
                    f"{len(rows)} row(s): the run's files disagree (results.csv was emptied or replaced); "
                    "restore it, or start a new run"
                )
            rows = rows[:initial_epoch]
            if scratch is None:
                write_results(resume_dir / "results.csv", rows)
            return model, initial_epoch, rows
        print(f"note: {resume_dir} has no last.keras (no epoch finished): training starts from epoch 1", flush=True)
    # a shape Keras cannot build fails here, before the run directory exists
    return new_model(cfg, train_split.images), 0, []


def _load_last(last: Path, cfg: Config):
    """last.keras of a resumed run, checked: a readable .keras file whose weights fit config.yaml's model."""
    keras = import_keras()
    from .detector import check_keras_file
    from .models import build_model

    if not last.is_file():
        raise UserError(f"{last} is not a file (a folder or a broken link): the run cannot resume from it")
    check_keras_file(last)
    try:
        model = keras.models.load_model(last)
    except Exception as e:  # noqa: BLE001 - any load failure means the checkpoint is damaged
        raise UserError(
            f"{last} is damaged ({type(e).__name__}: {shorten(str(e).splitlines()[0] if str(e) else '', 120)}); "
            "the run cannot resume from it: start a new run"
        ) from None
    expected = [tuple(w.shape) for w in build_model(cfg.model).weights]
    if [tuple(w.shape) for w in model.weights] != expected or model.optimizer is None:
        raise UserError(
            f"{last} holds another model than {last.parent / 'config.yaml'} describes (was config.yaml edited?): "
            "resume with the config the run started with, or start a new run"
        )
    return model


def _prepare_run_dir(cfg: Config, run_dir, resume: bool, config_changed: bool, scratch, data_info, rows) -> Path:
    """Where this process writes: a new run directory, the resumed one, or a worker's scratch folder."""
    if scratch is not None:  # a worker that is not the chief: its copies go to a folder it removes
        if resume:
            write_results(scratch / "results.csv", rows)
        return scratch
    if not resume:
        run_dir = new_run_dir(cfg.train.runs_dir, cfg.train.name)
        atomic_write_text(run_dir / "config.yaml", versions_header() + cfg.to_yaml())
        write_data_info(run_dir, data_info)
    elif config_changed:
        atomic_write_text(run_dir / "config.yaml", versions_header() + cfg.to_yaml())
    return run_dir


def _extra_callbacks(cfg: Config, run_dir: Path) -> list:
    """SwapEMAWeights (validation sees the average) and TensorBoard, as the config asks."""
    keras = import_keras()
    extra = [keras.callbacks.SwapEMAWeights()] if cfg.train.ema else []
    if cfg.train.tensorboard and importlib.util.find_spec("tensorboard") is None:
        print("note: tensorboard is not installed (pip install tensorboard): no event files", file=sys.stderr)
    elif cfg.train.tensorboard:  # event files: tensorboard --logdir runs
        extra.append(
            keras.callbacks.TensorBoard(
                log_dir=str(run_dir / "tensorboard"), write_graph=cfg.train.tensorboard_graph, update_freq="epoch"
            )
        )
    return extra


def _fit(cfg: Config, model, strategy, train_split, val_split, initial_epoch: int, callback, run_dir, rows) -> None:
    """The epochs still to run, stage by stage (a frozen backbone first, when configured)."""
    from .pipelines import distribute, eval_dataset

    bs = cfg.train.batch_size
    steps = math.ceil(len(train_split) / bs)
    extra = _extra_callbacks(cfg, run_dir)
    done_early = initial_epoch and cfg.train.early_stopping and callback.since >= cfg.train.early_stopping
    for start, end in stages(cfg, initial_epoch) if not done_early else []:
        set_backbone_frozen(model, start < cfg.model.freeze_epochs, cfg, start * steps)
        model.fit(
            distribute(lambda start=start, end=end: training_batches(cfg, train_split, end, start), strategy),
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


def init_from(model, source: str) -> None:
    """Copy the weights of ``source`` (a .keras file or run directory, loaded safely) into ``model``."""
    try:
        src = load_model_file(source, keras_only="model.init")
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
    """Evaluate best.keras on validation, write metrics.json (the 'finished' marker) and curves.png.

    The figures are computed the way ``cifake evaluate`` computes them (the same scoring path and
    exact metrics), so metrics.json and ``cifake evaluate RUN --split val`` agree to the last digit;
    the per-epoch ``auc`` of results.csv is Keras' streaming estimate (200 thresholds), said as such.
    """
    from .detector import predict_images
    from .metrics import binary_report

    best = load_model_file(run_dir / "best.keras")
    p = predict_images(best, val_split.images, 1024, run_dir / "best.keras")
    r = binary_report(val_split.labels, p, 0.5)
    best_value, _ = best_of(rows, cfg.train.monitor)
    best_epoch = next(int(r_["epoch"]) for r_ in rows if r_[cfg.train.monitor] == best_value)
    metrics = {
        "split": "val",
        "images": len(val_split),
        "accuracy": r["accuracy"],
        "loss": r["log_loss"],  # binary cross-entropy, without label smoothing
        "precision": r["fake"]["precision"],
        "recall": r["fake"]["recall"],
        "auc": r["roc_auc"],
        "auc_kind": "exact ROC AUC, as cifake evaluate computes it (results.csv: Keras' streaming estimate)",
        "average_precision": r["average_precision"],
        "ece": r["ece"],
        f"best_{cfg.train.monitor.removeprefix('val_')}": best_value,
        "best_epoch": best_epoch,
        "epochs_run": len(rows),
        "train_seconds": sum(r_["seconds"] for r_ in rows),
        "parameters": best.count_params(),
        "macs": macs(best),
        "threshold": 0.5,
    }
    try:
        from .plots import training_curves

        training_curves(rows, run_dir / "curves.png", cfg.train.monitor)
    except Exception as e:  # noqa: BLE001 - a figure must not lose a finished run
        print(f"warning: could not draw curves.png ({e})", file=sys.stderr)
    atomic_write_json(run_dir / "metrics.json", metrics)
    return metrics


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
