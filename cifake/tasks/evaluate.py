"""``cifake evaluate``: honest metrics on a named split, per-subject accuracy, plots and mistakes.

Outputs go next to the checkpoint (or to ``--out``): ``metrics.json`` gains an ``evaluate.<split>``
section (the trainer's own validation figures stay as they are), and ``eval-<split>/`` holds the
figures and ``predictions.csv``. The threshold is, in order: ``--threshold``; a ``threshold.json``
next to the checkpoint (written by ``--choose-threshold`` on the validation split); 0.5.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..base.errors import UserError
from ..base.files import atomic_open, atomic_write_json
from ..base.limits import can_create
from ..base.metrics import best_threshold, binary_report, per_group_accuracy
from ..base.owned import PREDICTIONS_HEADER, check_replaceable
from ..base.progress import say
from ..base.text import csv_path, printable
from ..config import DataConfig
from ..data.dedup import twins
from ..data.listing import SUBJECTS, load_split, load_splits, subject_of, training_hashes
from ..data.sources import load_sources, per_source, print_sources, sources_root
from ..models.detector import (
    THRESHOLD_FILE,
    Detector,
    resolve_checkpoint,
)
from ..models.presets import PRETRAINED_DIR, outputs_for
from ..training.rundir import run_config, split_grouped

log = logging.getLogger(__name__)


def evaluate(
    checkpoint: str | Path,
    *,
    split: str | None = None,
    data_dir: str | None = None,
    threshold: float | None = None,
    batch_size: int = 1024,
    plots: bool = True,
    out: str | Path | None = None,
    choose_threshold: bool = False,
    tta: bool | str = False,
    corruptions: str | None = None,
    calibrate: bool = False,
) -> dict:
    """Evaluate ``checkpoint``; return the report written to metrics.json (see module docstring)."""
    if (calibrate or choose_threshold) and split not in (None, "val"):  # before any work
        _refuse_fitting_off_val(calibrate)
    checkpoint = resolve_checkpoint(checkpoint)
    if corruptions is not None:
        from ..data.corruptions import parse_spec

        parse_spec(corruptions)  # a bad spec fails now, not after the scoring
    shipped = checkpoint.parent.resolve() == PRETRAINED_DIR.resolve()
    # nothing is ever written inside the installed package: a shipped model's results go to runs/pretrained/
    out_dir = Path(out) if out else outputs_for(checkpoint)
    check_writable_dir(out_dir, "{out}" if out else "the checkpoint's folder (choose another with {out})")
    _refuse_out_in_data(out_dir, checkpoint, data_dir)
    read_metrics(out_dir / "metrics.json")  # a damaged one is refused before the work, not after
    detector = Detector.load(checkpoint, threshold, stored_threshold=not choose_threshold)
    split, data, data_cfg, sources, skipped = _split_data(checkpoint, split, data_dir)
    if (calibrate or choose_threshold) and split != "val":
        _refuse_fitting_off_val(calibrate)
    check_replaceable(out_dir / f"eval-{split}" / "predictions.csv", PREDICTIONS_HEADER, "predictions CSV")
    p = detector.predict(data.images, batch_size, tta)
    y = data.labels
    threshold, source = detector.threshold, detector.threshold_source
    if choose_threshold:
        threshold, source = best_threshold(y, p), "chosen now on val (max accuracy)"
    report = binary_report(y, p, threshold)
    report.update(split=split, data_dir=str(data_cfg.dir), checkpoint=str(checkpoint), threshold_source=source, tta=tta)
    subjects = np.array([subject_of(x) for x in data.paths])
    report["per_subject"] = per_group_accuracy(y, p, subjects, SUBJECTS, threshold)
    report["twins"] = twins_in_training(checkpoint, split, data, data_dir if sources is None else None, p, threshold)
    if sources is not None:
        report["per_source"] = per_source(y, p, sources, threshold)
    report["skipped"] = {
        name: {"files": len(f), "examples": [printable(x) for x in f[:3]]} for name, f in skipped.items()
    }
    if calibrate:
        plain = p if tta in (False, "none") else detector.predict(data.images, batch_size, False)
        report["calibration"] = _calibrate(detector, plain, y, out_dir if shipped else None)
    if corruptions is not None:
        report["robustness"] = robustness(detector, data, corruptions, threshold, batch_size, tta, report)
    eval_dir = out_dir / f"eval-{split}"
    eval_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(eval_dir / "predictions.csv", data.paths, p, threshold)
    if choose_threshold:
        _write_threshold(out_dir, threshold, len(y), checkpoint)
    if plots:
        report["figures"] = _figures(y, p, data, threshold, eval_dir, report)
    metrics_file = _merge_metrics(out_dir / "metrics.json", split, report)
    print_report(report)
    print_twins(report["twins"])
    if "per_source" in report:
        print_sources(report["per_source"], int((y == 0).sum()))
    if "robustness" in report:
        print_robustness(report["robustness"])
    for name, sk in report["skipped"].items():
        say(
            f"skipped {sk['files']:,} file(s) of {printable(name)} that do not decode or exceed the caps, e.g. "
            f"{sk['examples'][0]}: the figures above leave them out"
        )
    log.info(f"wrote {metrics_file} (evaluate.{split}) and {eval_dir}/")
    return report


def _split_data(checkpoint: Path, split: str | None, data_dir: str | None):
    """(split name, its images, the data config, each image's source or None): the run's own data.dir and
    seeded split unless told otherwise; a ``data_dir`` holding REAL/ and FAKE/<source>/ is the split
    'sources', whose images carry the name of their source."""
    if data_dir and split in (None, "test") and (root := sources_root(data_dir)) is not None:
        log.info(f"split: sources ({root}: REAL/ against each FAKE/<source>/)")
        data, sources, skipped = load_sources(root)
        return "sources", data, DataConfig(dir=str(root)), sources, skipped
    cfg = run_config(checkpoint)
    data_cfg = cfg.data if cfg else DataConfig()
    if data_dir:
        data_cfg.dir = data_dir
    has_test = all((Path(data_cfg.dir) / "test" / c).is_dir() for c in ("REAL", "FAKE"))
    if split is None:
        split = "test" if has_test else "val"
        log.info(
            f"split: {split} ({'test folder found' if has_test else f'no test folder in {data_cfg.dir}: the seeded validation split of train'})"
        )
    if split == "test":
        if not has_test:
            raise UserError(
                f"no {data_cfg.dir}/test/{{{{REAL,FAKE}}}}: use {{split}} val, or download the full dataset",
                options=("split",),
            )
        return split, load_split(data_cfg, "test"), data_cfg, None, {}
    return split, load_splits(data_cfg)[split], data_cfg, None, {}


def twins_in_training(checkpoint: Path, split: str, data, data_dir: str | None, p, threshold: float) -> dict:
    """How many scored images are byte-identical to an image the run trained on, and the figures without
    them. On the test split the reference is the whole train folder (validation images were selected
    on): CIFAKE's official test split has 378 such FAKE files."""
    cfg = run_config(checkpoint)
    data_cfg = cfg.data if cfg else DataConfig()
    if data_dir:
        data_cfg.dir = data_dir
    found = training_hashes(data_cfg, split_grouped(checkpoint)) if data.hashes is not None else None
    if found is None:
        return {"checked": False, "why": f"no {data_cfg.dir}/train/{{REAL,FAKE}} to compare with"}
    reference, against = (
        (found[0], f"{data_cfg.dir}/train") if split == "test" else (found[1], "the run's training images")
    )
    mask = twins(data.hashes, reference)
    out = {
        "checked": True,
        "against": against,
        "images": int(mask.sum()),
        "in_training": int(twins(data.hashes, found[1]).sum()),
    }
    y = data.labels
    keep = ~mask
    if mask.any() and len(np.unique(y[keep])) == 2:
        r = binary_report(y[keep], p[keep], threshold)
        out["without"] = {
            "images": r["images"], "accuracy": r["accuracy"], "roc_auc": r["roc_auc"],
            "fake_recall": r["fake"]["recall"], "real_recall": r["real"]["recall"],
        }  # fmt: skip
    return out


def print_twins(t: dict) -> None:
    if not t["checked"]:
        log.info(f"  byte-identical twins in training: not checked ({t['why']})")
        return
    if not t["images"]:
        log.info(f"  byte-identical twins in training: none (compared with {t['against']})")
        return
    line = f"  {t['images']:,} image(s) are byte-identical to one of {t['against']}"
    if t["against"] != "the run's training images":
        line += f" ({t['in_training']:,} of them in the run's training images)"
    log.info(line)
    if "without" in t:
        w = t["without"]
        log.info(
            f"  without them ({w['images']:,} images): accuracy {w['accuracy']:.4f}   ROC AUC {w['roc_auc']:.4f}   "
            f"FAKE recall {w['fake_recall']:.4f}   REAL recall {w['real_recall']:.4f}"
        )


def _calibrate(detector: Detector, p: np.ndarray, y: np.ndarray, out_dir: Path | None) -> dict:
    from ..models.calibrate import calibrate as fit_and_fold

    cal = fit_and_fold(detector.model, detector.path, p, y, out_dir=out_dir)
    log.info(
        f"calibration: temperature {cal['temperature']:.4f}, bias {cal['bias']:+.4f} fitted on val; ECE "
        f"{cal['ece_before']:.4f} -> {cal['ece_after']:.4f} ({cal['ece_after_held_out_half']:.4f} on a held-out "
        f"half); accuracy at 0.5 {cal['accuracy_before']:.4f} -> {cal['accuracy_after']:.4f}; wrote {cal['checkpoint']}"
    )
    return cal


def _write_threshold(out_dir: Path, threshold: float, images: int, checkpoint: Path) -> None:
    atomic_write_json(
        out_dir / THRESHOLD_FILE,
        {
            "threshold": threshold,
            "chosen_on": "val",
            "criterion": "max accuracy",
            "images": images,
            "model": checkpoint.name,  # applies to this file only, not to its exports beside it
        },
    )


def _figures(y, p, data, threshold: float, eval_dir: Path, report: dict) -> list[str]:
    from ..models.plots import evaluation_figures, robustness_figure

    figures = [str(f) for f in evaluation_figures(y, p, data, threshold, eval_dir)]
    if "per_source" in report:
        from ..models.plots import sources_figure

        figures.append(str(sources_figure(report["per_source"], eval_dir / "sources.png")))
    if "robustness" in report:
        figures.append(str(robustness_figure(report["robustness"], eval_dir / "robustness.png")))
    return figures


def read_metrics(metrics_file: Path) -> dict:
    """A run's metrics.json ({} when absent); a damaged one is a UserError, so nothing is lost by merging."""
    try:
        existing = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        existing = None
    if not isinstance(existing, dict) or not isinstance(existing.get("evaluate", {}), dict):
        raise UserError(
            f"{metrics_file} is damaged (not the JSON object cifake writes); nothing was added to it: "
            "restore it, or evaluate into another folder with {out}",
            options=("out",),
        )
    return existing


def _merge_metrics(metrics_file: Path, split: str, report: dict) -> Path:
    """metrics.json gains (or replaces) its evaluate.<split> section; the trainer's figures stay; atomic."""
    existing = read_metrics(metrics_file)
    made = existing.get("evaluate", {}).get(split, {}).get("calibration")
    if "calibration" not in report and made and _same_file(made.get("checkpoint"), report.get("checkpoint")):
        report["calibration"] = made  # the calibrated file, evaluated again, keeps the record of how it was made
    existing.setdefault("evaluate", {})[split] = report
    atomic_write_json(metrics_file, existing)
    return metrics_file


def _same_file(a: str | None, b: str | None) -> bool:
    return bool(a and b) and Path(a).resolve() == Path(b).resolve()


def _refuse_fitting_off_val(calibrate: bool):
    option = "calibrate" if calibrate else "choose_threshold"
    raise UserError(
        f"{{{option}}} only works on {{split}} val: nothing is ever fitted on test or train", options=(option, "split")
    )


def robustness(
    detector: Detector, data, spec: str, threshold: float, batch_size: int, tta: bool | str, clean: dict
) -> dict:
    """The corruption battery on ``data``: per operation and level, accuracy, FAKE/REAL recall, ROC AUC.

    Images are decoded once (``data.images``); each level corrupts them all (Pillow in threads,
    NumPy), then one batched pass of the model scores them. The worst accuracy over the battery is
    the headline: what a user scoring web images can count on.
    """
    import time

    from ..data import corruptions as C

    rows = []
    y = data.labels
    t0 = time.perf_counter()
    for name, level in C.parse_spec(spec):
        pc = detector.predict(C.apply(name, level, data.images, seed=0), batch_size, tta)
        r = binary_report(y, pc, threshold)
        rows.append(
            {
                "operation": name,
                "level": level,
                "accuracy": r["accuracy"],
                "fake_recall": r["fake"]["recall"],
                "real_recall": r["real"]["recall"],
                "roc_auc": r["roc_auc"],
            }
        )
        say(f"  {C.label(name, level):<16} accuracy {r['accuracy']:.4f}")
    worst = min(rows, key=lambda r: r["accuracy"])
    return {
        "clean": {
            "accuracy": clean["accuracy"],
            "fake_recall": clean["fake"]["recall"],
            "real_recall": clean["real"]["recall"],
            "roc_auc": clean["roc_auc"],
        },
        "battery": rows,
        "worst": {"operation": worst["operation"], "level": worst["level"], "accuracy": worst["accuracy"]},
        "seconds": time.perf_counter() - t0,
        "units": {c.name: c.unit for c in C.CORRUPTIONS.values()},
    }


def print_robustness(rob: dict) -> None:
    from ..data.corruptions import label

    c, w = rob["clean"], rob["worst"]
    log.info(f"  robustness ({len(rob['battery'])} corruptions, {rob['seconds']:.0f}s):")
    log.info(f"  {'operation':<16} {'accuracy':>8} {'FAKE rec':>8} {'REAL rec':>8} {'ROC AUC':>8}")
    log.info(
        f"  {'none':<16} {c['accuracy']:>8.4f} {c['fake_recall']:>8.4f} {c['real_recall']:>8.4f} {c['roc_auc']:>8.4f}"
    )
    for r in rob["battery"]:
        name = label(r["operation"], r["level"])
        log.info(
            f"  {name:<16} {r['accuracy']:>8.4f} {r['fake_recall']:>8.4f} {r['real_recall']:>8.4f} {r['roc_auc']:>8.4f}"
        )
    log.info(
        f"  worst case: {label(w['operation'], w['level'])} accuracy {w['accuracy']:.4f} (clean {c['accuracy']:.4f})"
    )


def _refuse_out_in_data(out_dir: Path, checkpoint: Path, data_dir: str | None) -> None:
    """Figures and CSVs written inside an image folder would be read as images by the next run."""
    from ..data.layout import inside_image_folders
    from ..data.sources import inside_sources

    cfg = run_config(checkpoint)
    roots = [r for r in (data_dir, cfg.data.dir if cfg else None) if r]
    if any(inside_image_folders(out_dir, r) or inside_sources(out_dir, r) for r in roots):
        raise UserError(
            f"{{out}} {out_dir} is inside the image folders of {roots[0]}: the figures would be read as images "
            "next time; choose a folder outside them",
            options=("out",),
        )


def check_writable_dir(folder: Path, what: str) -> None:
    """Fail before the scoring, not after: ``folder`` must be (or become) a writable folder."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{what}: {folder} is a file; give a folder for the results", options=("out",))
    if can_create(folder) is None:
        raise UserError(f"{what}: cannot write to {folder}; give a writable folder", options=("out",))


def write_predictions(path: Path, paths: list[str], p: np.ndarray, threshold: float) -> None:
    import csv

    with atomic_open(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "p_fake", "label"])
        w.writerows(
            (csv_path(raw), f"{prob:.6f}", "FAKE" if prob >= threshold else "REAL")
            for raw, prob in zip(paths, p, strict=True)
        )


def print_report(r: dict) -> None:
    cm = r["confusion"]
    log.info(f"model: {r['checkpoint']}")
    log.info(
        f"{r['split']}: {r['images']:,} images, threshold {r['threshold']:.4f} ({r['threshold_source']}); FAKE = 1 is positive"
    )
    log.info(
        f"  accuracy {r['accuracy']:.4f}   ROC AUC {r['roc_auc']:.4f}   average precision {r['average_precision']:.4f}"
    )
    log.info(f"  log loss {r['log_loss']:.4f}   Brier {r['brier']:.4f}   ECE {r['ece']:.4f}")
    log.info(f"  {'class':<6} {'precision':>9} {'recall':>7} {'F1':>7}")
    for cls in ("fake", "real"):
        m = r[cls]
        log.info(f"  {cls.upper():<6} {m['precision']:>9.4f} {m['recall']:>7.4f} {m['f1']:>7.4f}")
    log.info(
        f"  confusion (rows true, cols predicted): REAL [{cm['tn']:>6} {cm['fp']:>6}]  FAKE [{cm['fn']:>6} {cm['tp']:>6}]"
    )
    if r["per_subject"]:
        log.info(f"  {'subject':<11} {'images':>6} {'acc':>7} {'REAL acc':>8} {'FAKE acc':>8}")
        for name, m in sorted(r["per_subject"].items(), key=lambda kv: kv[1]["accuracy"]):
            log.info(
                f"  {name:<11} {m['images']:>6} {m['accuracy']:>7.4f} {m['real_accuracy']:>8.4f} {m['fake_accuracy']:>8.4f}"
            )
