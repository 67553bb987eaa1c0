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
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path

from ..base.errors import UserError
from ..base.files import atomic_save, atomic_write_json, atomic_write_text
from ..base.progress import duration, progress_callback
from ..base.text import shorten
from ..base.tfutil import import_keras
from ..config import RESUMABLE_KEYS, Config, config_from_dict, load_config, read_yaml, resolve
from ..models.detector import load_model_file
from ..models.registry import describe, macs
from .devices import build_for_replicas, cluster_from_env, setup_devices
from .distill import TEACHER_FILE, best_copy, loss_and_metrics, mixed_targets, run_scores, save_scores
from .rundir import (
    COLUMNS,
    METRICS,
    check_same_data,
    new_run_dir,
    read_results,
    versions_header,
    write_data_info,
    write_results,
)
from .schedule import lr_callback

keras = import_keras()  # training needs it from the first line; the CLI imports this module only in `run`
log = logging.getLogger(__name__)


# --- optimizer, compile ---------------------------------------------------------------------------


def make_optimizer(cfg):
    t = cfg.train
    # train.ema: Keras keeps the average in the optimizer, so last.keras carries it and resume is exact
    ema = {"use_ema": True, "ema_momentum": t.ema} if t.ema else {}
    if t.optimizer == "adam":
        return keras.optimizers.Adam(t.lr, **ema)
    if t.optimizer == "adamw":
        return keras.optimizers.AdamW(t.lr, weight_decay=t.weight_decay, **ema)
    return keras.optimizers.SGD(t.lr, momentum=t.momentum, nesterov=True, weight_decay=t.weight_decay or None, **ema)


def compile_model(model, cfg) -> None:
    loss, metrics = loss_and_metrics(cfg.train.label_smoothing, distilled=bool(cfg.train.teacher))
    model.compile(
        optimizer=make_optimizer(cfg),
        loss=loss,
        metrics=metrics,
        jit_compile={"auto": "auto", "on": True, "off": False}[cfg.train.jit_compile],
    )


def averaged_weights(model) -> list | None:
    """The model's weights with the trainable ones replaced by the optimizer's moving average (train.ema),
    in ``model.get_weights()`` order; None when the optimizer keeps no average."""
    from ..base.compat import ema_average

    average = ema_average(model.optimizer)
    if average is None:
        return None
    return [average.get(id(v), v).numpy() for v in model.weights]


def new_model(cfg, train_images):
    """The model of a new run, built, initialised (``model.init``, else a whitening stem fitted to
    ``train_images``) and compiled: what ``cifake train`` and the benchmarks start from."""
    from ..models.registry import build_model
    from ..models.whiten import fit_whitening

    model = build_model(cfg.model)
    if cfg.model.init:
        init_from(model, cfg.model.init)
    elif cfg.model.stem == "whiten":
        fit_whitening(model, train_images, cfg.train.seed)
    compile_model(model, cfg)
    return model


def training_batches(cfg, split, epochs: int, initial_epoch: int = 0, teacher_p=None):
    """``data.train_dataset`` with every augment.* key of ``cfg`` applied, for epochs initial_epoch..epochs-1
    (``teacher_p``: the teachers' scores of ``split``, ``distill.run_scores``, mixed into the targets)."""
    from ..data.pipelines import train_dataset

    targets = None if teacher_p is None else mixed_targets(split.labels, teacher_p, cfg.train.distill_weight)
    return train_dataset(
        split,
        cfg.train.batch_size,
        seed=cfg.train.seed,
        epochs=epochs,
        initial_epoch=initial_epoch,
        augment=cfg.augment,
        total_epochs=cfg.train.epochs,
        targets=targets,
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
    backbone = next((layer for layer in model.layers if isinstance(layer, keras.Model)), None)
    if backbone is None or backbone.trainable == (not frozen):
        return
    backbone.trainable = not frozen
    compile_model(model, cfg)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(step)
    log.info(f"backbone {'frozen' if frozen else 'unfrozen: fine-tuning all layers'} from step {step}")


def format_row(row: dict[str, float], epochs: int) -> str:
    short = {"loss": "loss", "accuracy": "acc", "precision": "prec", "recall": "rec", "auc": "auc"}

    def part(prefix: str) -> str:
        return " ".join(f"{short[m]} {row[prefix + m]:.4f}" for m in METRICS)

    return f"epoch {int(row['epoch']):>3}/{epochs}  {part('')}  | val {part('val_')}  lr {row['lr']:.2e}  {row['seconds']:.1f}s"


class EpochLogger(keras.callbacks.Callback):
    """At each epoch's end: one line, then best.keras (if improved), results.csv and last.keras, each
    written atomically and in that order (see the module docstring); stops on a non-finite loss and,
    with train.early_stopping, when the monitor has not improved for that many epochs."""

    def __init__(self, trainer: Trainer):
        super().__init__()
        self.trainer = trainer
        self.monitor = trainer.cfg.train.monitor
        self.best, self.since = best_of(trainer.rows, self.monitor)
        self.stopped_early = False
        self.diverged = ""  # "nan" or "inf" when the training loss stopped being finite
        self.session: list[float] = []  # seconds of the epochs run by this process: the ETA

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        t, logs = self.trainer, logs or {}
        row = {"epoch": epoch + 1, **{c: float(logs.get(c, float("nan"))) for c in COLUMNS[1:-2]}}
        row["lr"] = float(self.model.optimizer.learning_rate.numpy())
        row["seconds"] = time.perf_counter() - self.t0
        if not math.isfinite(row["loss"]):  # nothing of this epoch is kept: the weights are garbage
            self.diverged = str(row["loss"])
            self.model.stop_training = True
            return
        if is_better(self.monitor, row[self.monitor], self.best):
            self.best, self.since = row[self.monitor], 0
            # portable (float32 compute, built-in loss and metrics under distillation), with the averaged
            # weights that were just validated (train.ema)
            atomic_save(best_copy(self.model, averaged_weights(self.model), t.cfg.train), t.run_dir / "best.keras")
            mark = " *"
        else:
            self.since += 1
            mark = ""
        t.rows.append(row)
        write_results(t.run_dir / "results.csv", t.rows)
        atomic_save(self.model, t.run_dir / "last.keras")
        self.session.append(row["seconds"])
        epochs = t.cfg.train.epochs
        left = epochs - (epoch + 1)
        eta = f"  ETA {duration(sum(self.session) / len(self.session) * left)}" if left else ""
        log.info(format_row(row, epochs) + mark + eta)
        patience = t.cfg.train.early_stopping
        if patience and self.since >= patience:
            log.info(f"early stopping: {self.monitor} has not improved for {self.since} epochs")
            self.stopped_early = True
            self.model.stop_training = True


class Trainer:
    """One run of ``cifake train``, read top to bottom: ``setup()`` (devices, data, model, run
    directory), ``fit()`` (the epochs still to run, stage by stage), ``finish()`` (best.keras
    evaluated, metrics.json). ``run()`` does the three; ``scripts/bench_train.py`` times
    ``setup()`` + ``fit()`` of the same object.

    After ``setup()`` the object holds what the run is made of: ``strategy`` and ``devices``,
    ``train_split`` / ``val_split`` and ``data_info`` (data.json), ``steps_per_epoch``, ``model``,
    ``start_epoch`` (epochs already done when resuming), ``rows`` (results.csv) and ``run_dir``.
    Everything that can refuse the run (TF_CONFIG, data, model shape) is checked before a new run
    directory exists, so a failed start leaves nothing behind. Under multi-worker training only the
    chief writes the run directory; the other workers write to a temporary folder they remove.
    """

    def __init__(
        self,
        cfg: Config,
        run_dir: Path | None = None,
        *,
        resume: bool = False,
        config_changed: bool = False,
        callbacks: tuple | list = (),
    ):
        self.cfg, self.resume, self.config_changed = cfg, resume, config_changed
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.callbacks = list(callbacks)  # more Keras callbacks for fit (the benchmark's probe)
        self.cluster = cluster_from_env(cfg.train.distribute)  # a malformed TF_CONFIG fails before anything else
        if self.cluster and cfg.train.batch_size % self.cluster.tasks:
            raise UserError(
                f"train.batch_size={cfg.train.batch_size} is the global batch and must divide evenly over the "
                f"{self.cluster.tasks} workers; choose a multiple of {self.cluster.tasks}"
            )
        from ..data.layout import inside_image_folders

        if not resume and inside_image_folders(cfg.train.runs_dir, cfg.data.dir):
            raise UserError(
                f"train.runs_dir={cfg.train.runs_dir} is inside the dataset's image folders ({cfg.data.dir}): the "
                "run's figures would be read as images next time; choose a folder outside them"
            )
        chief = self.cluster is None or self.cluster.is_chief
        self.scratch = None if chief else Path(tempfile.mkdtemp(prefix="cifake-worker-"))
        self.strategy = self.devices = self.model = self.logger = None
        self.train_split = self.val_split = None
        self.teacher_p = None  # distillation (train.teacher): the teachers' scores of the training split
        self.data_info: dict = {}
        self.steps_per_epoch = self.start_epoch = 0
        self.rows: list[dict[str, float]] = []

    def run(self) -> Path:
        """setup, fit, finish; the caller's mixed-precision policy comes back after, and a worker's
        scratch folder is removed."""
        started = time.perf_counter()
        policy = keras.mixed_precision.global_policy()  # setup_devices sets the run's
        try:
            self.setup()
            self.fit()
            return self.finish(started)
        finally:
            keras.mixed_precision.set_global_policy(policy)
            if self.scratch is not None:
                shutil.rmtree(self.scratch, ignore_errors=True)

    # --- setup ------------------------------------------------------------------------------------

    def setup(self) -> None:
        cfg = self.cfg
        self.strategy, self.devices = setup_devices(cfg, self.cluster)
        keras.utils.set_random_seed(cfg.train.seed)
        t0 = time.perf_counter()
        self._load_data()
        if self.resume:
            check_same_data(self.run_dir, self.data_info)
        self.teacher_p = run_scores(cfg, self.train_split, self.val_split, self.run_dir if self.resume else None)
        with self.strategy.scope():
            self._model_and_history()
        self._prepare_run_dir()
        log.info(f"run directory: {self.run_dir}")
        log.info(f"devices: {self.devices}")
        log.info(
            f"data: {len(self.train_split):,} train / {len(self.val_split):,} val images from {cfg.data.dir} "
            f"({time.perf_counter() - t0:.1f}s)"
        )
        if self.start_epoch:
            log.info(f"resuming after epoch {self.start_epoch}")
        log.info(f"model: {self.model.name}, {describe(self.model)}")
        if self.strategy.num_replicas_in_sync > 1:
            build_for_replicas(self.model, self.strategy)

    def _load_data(self) -> None:
        """The splits and data.json's facts; Ctrl-C here leaves nothing written."""
        from ..data.listing import load_splits, split_info

        try:
            splits = load_splits(self.cfg.data)
        except KeyboardInterrupt:
            log.warning("\ninterrupted while loading the data: nothing was written")
            raise
        self.train_split, self.val_split = splits["train"], splits["val"]
        self.steps_per_epoch = math.ceil(len(self.train_split) / self.cfg.train.batch_size)
        self.data_info = {**split_info(splits), "steps_per_epoch": self.steps_per_epoch}

    def _model_and_history(self) -> None:
        """The model, the epochs already done and their results.csv rows: from last.keras when
        resuming, else a new model (inside the strategy's scope).

        On resume, the run's files must agree: last.keras loads, holds the architecture config.yaml
        describes, and results.csv has a row for every epoch it completed (results.csv is then cut
        back to those rows).
        """
        if self.resume:
            last = self.run_dir / "last.keras"
            if last.exists() or last.is_symlink():
                self.model = _load_last(last, self.cfg)
                done = min(int(self.model.optimizer.iterations.numpy()) // self.steps_per_epoch, self.cfg.train.epochs)
                rows = read_results(self.run_dir / "results.csv")
                if len(rows) < done:
                    raise UserError(
                        f"{self.run_dir}: last.keras has completed {done} epoch(s) but results.csv holds "
                        f"{len(rows)} row(s): the run's files disagree (results.csv was emptied or replaced); "
                        "restore it, or start a new run"
                    )
                self.start_epoch, self.rows = done, rows[:done]
                if self.scratch is None:
                    write_results(self.run_dir / "results.csv", self.rows)
                return
            log.info(f"note: {self.run_dir} has no last.keras (no epoch finished): training starts from epoch 1")
        # a shape Keras cannot build fails here, before the run directory exists
        self.model, self.start_epoch, self.rows = new_model(self.cfg, self.train_split.images), 0, []

    def _prepare_run_dir(self) -> None:
        """Where this process writes: a new run directory, the resumed one, or a worker's scratch folder."""
        cfg = self.cfg
        if self.scratch is not None:  # a worker that is not the chief: its copies go to a folder it removes
            if self.resume:
                write_results(self.scratch / "results.csv", self.rows)
            self.run_dir = self.scratch
        elif not self.resume:
            self.run_dir = new_run_dir(cfg.train.runs_dir, cfg.train.name)
            atomic_write_text(self.run_dir / "config.yaml", versions_header() + cfg.to_yaml())
            write_data_info(self.run_dir, self.data_info)
        elif self.config_changed:
            atomic_write_text(self.run_dir / "config.yaml", versions_header() + cfg.to_yaml())
        if self.teacher_p is not None and not (self.run_dir / TEACHER_FILE).is_file():
            save_scores(self.run_dir, self.teacher_p)  # new, or scored again for a resume that lost it

    # --- fit --------------------------------------------------------------------------------------

    def fit(self) -> None:
        """The epochs still to run, stage by stage (a frozen backbone first, when configured)."""
        self.logger = EpochLogger(self)
        try:
            for start, end in self._stages():
                self._fit_stage(start, end)
                if self.logger.diverged:
                    raise UserError(
                        f"training diverged: the loss became {self.logger.diverged} in epoch {len(self.rows) + 1} "
                        f"(train.lr={self.cfg.train.lr:g}, train.optimizer={self.cfg.train.optimizer}); lower "
                        f"train.lr or add train.warmup_epochs. The run is not finished; {self.run_dir} keeps the "
                        "epochs before it"
                    )
                if self.logger.stopped_early:
                    break
        except KeyboardInterrupt:
            log.warning(
                f"\ninterrupted after {len(self.rows)} completed epoch(s); saved in {self.run_dir}. Resume with:\n"
                f"  cifake train --resume {self.run_dir}"
            )
            raise

    def _stages(self) -> list[tuple[int, int]]:
        patience = self.cfg.train.early_stopping
        if self.start_epoch and patience and self.logger.since >= patience:
            return []  # a resumed run that had already stopped early
        return stages(self.cfg, self.start_epoch)

    def _fit_stage(self, start: int, end: int) -> None:
        from ..base.compat import local_logs_for_multi_worker
        from ..data.pipelines import distribute, eval_dataset

        cfg, strategy, steps = self.cfg, self.strategy, self.steps_per_epoch
        set_backbone_frozen(self.model, start < cfg.model.freeze_epochs, cfg, start * steps)
        eval_batch = max(cfg.train.batch_size, 512)
        callbacks = [
            lr_callback(cfg.train, steps),
            progress_callback(steps, cfg.train.epochs),
            self.logger,
            *self._extra_callbacks(),
            *self.callbacks,
        ]
        with local_logs_for_multi_worker(strategy):
            self.model.fit(
                distribute(lambda: training_batches(cfg, self.train_split, end, start, self.teacher_p), strategy),
                validation_data=distribute(lambda: eval_dataset(self.val_split, eval_batch), strategy),
                validation_steps=math.ceil(len(self.val_split) / eval_batch),
                epochs=end,
                initial_epoch=start,
                steps_per_epoch=steps,
                callbacks=callbacks,
                shuffle=False,  # the dataset shuffles itself, reproducibly
                verbose=0,  # progress_callback draws the one display
            )

    def _extra_callbacks(self) -> list:
        """SwapEMAWeights (validation sees the average) and TensorBoard, as the config asks."""
        t = self.cfg.train
        extra = [keras.callbacks.SwapEMAWeights()] if t.ema else []
        if t.tensorboard and importlib.util.find_spec("tensorboard") is None:
            log.warning("note: tensorboard is not installed (pip install tensorboard): no event files")
        elif t.tensorboard:  # event files: tensorboard --logdir runs
            extra.append(
                keras.callbacks.TensorBoard(
                    log_dir=str(self.run_dir / "tensorboard"), write_graph=t.tensorboard_graph, update_freq="epoch"
                )
            )
        return extra

    # --- finish -----------------------------------------------------------------------------------

    def finish(self, started: float | None = None) -> Path:
        """best.keras evaluated on validation into metrics.json (the chief); the run directory."""
        if self.scratch is not None:
            log.info(
                f"worker {self.cluster.task_index} done after {len(self.rows)} epoch(s); the chief wrote the run directory"
            )
            return self.run_dir
        log.info("evaluating best.keras on the validation split ...")
        cfg = self.cfg
        final = finish(self.run_dir, self.val_split, cfg, self.rows)
        precision = "float32" if self.cfg.train.mixed_precision == "off" else "the run's precision"
        log.info(
            f"best {cfg.train.monitor} {final['best_' + cfg.train.monitor.removeprefix('val_')]:.4f} at epoch "
            f"{final['best_epoch']} (during training, {precision}); best.keras re-scored in float32: val accuracy "
            f"{final['accuracy']:.4f} (metrics.json, as cifake evaluate reports it)"
        )
        # the whole command (loading, epochs, validation, this evaluation); `cifake runs` counts the epochs only
        wall = f" (wall time {duration(time.perf_counter() - started)})" if started is not None else ""
        log.info(f"run directory: {self.run_dir}{wall}")
        return self.run_dir


def train(
    cfg: Config | str | Path | None = None,
    run_dir: Path | None = None,
    *,
    resume: bool = False,
    config_changed: bool = False,
    **overrides,
) -> Path:
    """Train ``cfg`` into ``run_dir`` (a new runs/NAME when None); return the run directory.

    ``cfg``: a Config, a recipe file, or None for the defaults; keyword ``overrides`` change it as
    ``key=value`` does on the command line (``cifake.train("configs/fast.yaml", epochs=3)``; see
    ``config.resolve``). With ``resume``, continue ``run_dir`` from its last completed epoch (see the
    module docstring); ``config_changed``: the resumable keys changed, so config.yaml is rewritten.
    See ``Trainer``.
    """
    if not isinstance(cfg, Config) or overrides:
        cfg = resolve(cfg, **overrides)
    return Trainer(cfg, run_dir, resume=resume, config_changed=config_changed).run()


def _load_last(last: Path, cfg: Config):
    """last.keras of a resumed run, checked: a readable .keras file whose weights fit config.yaml's model."""
    from ..models.detector import check_keras_file
    from ..models.registry import build_model

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
    log.info(f"model: weights initialised from {source}")


def finish(run_dir: Path, val_split, cfg: Config, rows: list[dict[str, float]]) -> dict:
    """Evaluate best.keras on validation, write metrics.json (the 'finished' marker) and curves.png.

    The figures are computed the way ``cifake evaluate`` computes them (the same scoring path and
    exact metrics), so metrics.json and ``cifake evaluate RUN --split val`` agree to the last digit;
    the per-epoch ``auc`` of results.csv is Keras' streaming estimate (200 thresholds), said as such.
    """
    from ..base.metrics import binary_report
    from ..models.detector import predict_images

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
        from ..models.plots import training_curves

        training_curves(rows, run_dir / "curves.png", cfg.train.monitor)
    except Exception as e:  # noqa: BLE001 - a figure must not lose a finished run
        log.warning(f"warning: could not draw curves.png ({e})")
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
