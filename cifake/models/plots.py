"""Matplotlib figures (Agg backend, imported only when a figure is drawn)."""

from __future__ import annotations

from pathlib import Path

from ..base.text import printable


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(rows: list[dict[str, float]], path: str | Path, monitor: str = "val_accuracy") -> Path:
    """curves.png: a 2x3 grid of loss, accuracy, precision/recall, AUC and learning rate per epoch,
    train vs val, with the best epoch (by ``monitor``) marked in every panel."""
    plt = _plt()
    epochs = [int(r["epoch"]) for r in rows]
    values = [r[monitor] for r in rows]
    best = epochs[(min if monitor == "val_loss" else max)(range(len(values)), key=values.__getitem__)] if rows else None
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), constrained_layout=True)
    panels = list(axes.ravel())
    for ax, metric in zip(panels[:4], ("loss", "accuracy", "precision", "auc"), strict=True):
        keys = ("precision", "recall") if metric == "precision" else (metric,)
        for key in keys:
            style = "--" if key == "recall" else "-"
            ax.plot(epochs, [r[key] for r in rows], style, marker=".", color="tab:blue", label=f"train {key}")
            ax.plot(epochs, [r[f"val_{key}"] for r in rows], style, marker=".", color="tab:orange", label=f"val {key}")
        titles = {"precision": "precision / recall (FAKE = 1)", "auc": "AUC (Keras' streaming estimate)"}
        ax.set_title(titles.get(metric, metric))
    panels[4].plot(epochs, [r["lr"] for r in rows], marker=".", color="tab:green")
    panels[4].set_title("learning rate (end of epoch)")
    for ax in panels[:5]:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if best is not None:
            ax.axvline(best, color="tab:red", alpha=0.5, lw=1, label=f"best epoch {best}")
        ax.legend(fontsize=8)
    panels[5].axis("off")
    if best is not None:
        row = rows[epochs.index(best)]
        panels[5].text(
            0.0,
            0.9,
            "\n".join(
                [f"best epoch {best} of {len(rows)} (by {monitor})"]
                + [f"val {m}: {row['val_' + m]:.4f}" for m in ("accuracy", "precision", "recall", "auc", "loss")]
            ),
            va="top",
            family="monospace",
            fontsize=11,
        )
    return _save(fig, Path(path))


def compare_curves(runs: dict[str, list[dict[str, float]]], path: str | Path) -> Path:
    """Validation accuracy and loss per epoch of several runs in one figure (``cifake runs --compare``)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for name, rows in runs.items():
        epochs = [int(r["epoch"]) for r in rows]
        acc = [r["val_accuracy"] for r in rows]
        (line,) = axes[0].plot(epochs, acc, marker=".", label=name)
        if rows:
            i = max(range(len(acc)), key=acc.__getitem__)
            axes[0].plot(epochs[i], acc[i], "*", ms=12, color=line.get_color())
        axes[1].plot(epochs, [r["val_loss"] for r in rows], marker=".", label=name)
    axes[0].set_title("validation accuracy (* = best epoch)")
    axes[1].set_title("validation loss")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, Path(path))


def evaluation_figures(y, p, split, threshold: float, out_dir: str | Path, mistakes: int = 24) -> list[Path]:
    """confusion.png, roc_pr.png, reliability.png and mistakes.png (most confident errors) in ``out_dir``."""
    out_dir = Path(out_dir)
    files = [
        confusion_figure(y, p, threshold, out_dir / "confusion.png"),
        roc_pr_figure(y, p, out_dir / "roc_pr.png"),
        reliability_figure(y, p, out_dir / "reliability.png"),
    ]
    if (f := mistakes_figure(y, p, split, threshold, out_dir / "mistakes.png", mistakes)) is not None:
        files.append(f)
    return files


def confusion_figure(y, p, threshold: float, path: Path) -> Path:
    import numpy as np

    from ..base.metrics import confusion

    plt = _plt()
    cm = confusion(y, p, threshold)
    grid = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
    fig, ax = plt.subplots(figsize=(4.2, 3.8), constrained_layout=True)
    ax.imshow(grid, cmap="Blues")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(
            j,
            i,
            f"{v:,}\n{v / max(grid[i].sum(), 1):.1%}",
            ha="center",
            va="center",
            color="white" if v > grid.max() / 2 else "black",
        )
    ax.set_xticks([0, 1], ["REAL", "FAKE"])
    ax.set_yticks([0, 1], ["REAL", "FAKE"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion at threshold {threshold:.3f}")
    return _save(fig, path)


def roc_pr_figure(y, p, path: Path) -> Path:
    from ..base.metrics import pr_curve, roc_auc, roc_curve

    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4), constrained_layout=True)
    fpr, tpr, _ = roc_curve(y, p)
    a1.plot(fpr, tpr, label=f"AUC {roc_auc(y, p):.4f}")
    a1.plot([0, 1], [0, 1], ":", color="grey")
    a1.set(xlabel="false positive rate (REAL called FAKE)", ylabel="true positive rate (FAKE caught)", title="ROC")
    rec, prec = pr_curve(y, p)
    a2.plot(rec, prec)
    a2.set(
        xlabel="recall (FAKE)",
        ylabel="precision (FAKE)",
        title="precision-recall",
        ylim=(max(0, prec.min() - 0.02), 1.005),
    )
    for a in (a1, a2):
        a.grid(alpha=0.3)
    a1.legend(loc="lower right")
    return _save(fig, path)


def reliability_figure(y, p, path: Path) -> Path:
    from ..base.metrics import reliability

    plt = _plt()
    rows = [r for r in reliability(y, p) if r["count"]]
    fig, ax = plt.subplots(figsize=(4.5, 4.2), constrained_layout=True)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    ax.plot([r["mean_p"] for r in rows], [r["fake_rate"] for r in rows], "o-", label="model")
    for r in rows:
        ax.annotate(
            f"{r['count']}", (r["mean_p"], r["fake_rate"]), fontsize=7, textcoords="offset points", xytext=(3, -9)
        )
    ax.set(xlabel="mean predicted P(FAKE) in bin", ylabel="observed share of FAKE", title="reliability (10 bins)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return _save(fig, path)


def mistakes_figure(y, p, split, threshold: float, path: Path, mistakes: int = 24) -> Path | None:
    """The ``mistakes`` most confident errors with their names and P(FAKE); None when there is none."""
    import numpy as np

    wrong = np.flatnonzero((p >= threshold) != y.astype(bool))
    if not len(wrong):
        return None
    plt = _plt()
    wrong = wrong[np.argsort(-np.abs(p[wrong] - 0.5))][:mistakes]
    cols = 6
    rows_n = -(-len(wrong) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(cols * 1.9, rows_n * 2.2), constrained_layout=True, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong, strict=False):
        ax.imshow(split.images[i], interpolation="nearest")
        truth = "FAKE" if y[i] else "REAL"
        ax.set_title(f"{printable(Path(split.paths[i]).name)}\ntrue {truth}, P(FAKE) {p[i]:.3f}", fontsize=7)
    fig.suptitle("most confident mistakes")
    return _save(fig, path)


def robustness_figure(rob: dict, path: str | Path) -> Path:
    """robustness.png: accuracy against severity, one panel and curve per operation, clean accuracy dashed."""
    from ..data.corruptions import CORRUPTIONS, label

    plt = _plt()
    ops: dict[str, list[tuple[float, float]]] = {}
    for r in rob["battery"]:
        ops.setdefault(r["operation"], []).append((r["level"], r["accuracy"]))
    n = len(ops)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), constrained_layout=True, squeeze=False)
    clean = rob["clean"]["accuracy"]
    low = min([clean] + [r["accuracy"] for r in rob["battery"]])
    for ax, (name, pts) in zip(axes.flat, ops.items(), strict=False):
        # mild to severe, left to right
        pts = sorted(pts, reverse=name in CORRUPTIONS and CORRUPTIONS[name].severe_is_low)
        ax.plot(range(len(pts)), [a for _, a in pts], "o-", color="tab:red")
        ax.set_xticks(range(len(pts)), [f"{lv:g}" for lv, _ in pts])
        ax.axhline(clean, ls="--", color="gray", label=f"clean {clean:.3f}")
        ax.set_ylim(max(0.0, low - 0.05), 1.0)
        ax.set_title(name)
        ax.set_xlabel(rob.get("units", {}).get(name, "level"))
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    w = rob["worst"]
    fig.suptitle(
        f"Robustness: worst case {label(w['operation'], w['level'])} at {w['accuracy']:.3f} (clean {clean:.3f})"
    )
    return _save(fig, Path(path))


def sources_figure(rows: dict[str, dict], path: str | Path) -> Path:
    """sources.png: per FAKE source, ROC AUC against all REAL images and FAKE recall, side by side."""
    import numpy as np

    plt = _plt()
    names = list(rows)
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.45 * len(names)), constrained_layout=True)
    ax.barh(y - 0.2, [rows[n]["roc_auc"] for n in names], height=0.4, label="ROC AUC vs all REAL")
    ax.barh(y + 0.2, [rows[n]["fake_recall"] for n in names], height=0.4, label="FAKE recall")
    ax.axvline(0.5, color="grey", ls=":", lw=1)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("0.5 = chance (AUC)")
    ax.set_title("per FAKE source")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, Path(path))


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path


def eda_figures(splits: dict, stats: dict, out_dir: str | Path, samples: int = 32) -> list[Path]:
    """samples.png (REAL and FAKE examples) and mean_spectrum.png (mean images, spectra, difference)."""
    import numpy as np

    plt = _plt()
    out_dir = Path(out_dir)
    first = next(iter(splits.values()))
    rng = np.random.default_rng(0)
    cols = 8
    per = max(cols, samples - samples % cols)
    fig, axes = plt.subplots(
        2 * per // cols, cols, figsize=(cols * 1.2, 2 * per // cols * 1.3), constrained_layout=True
    )
    for label, name in enumerate(("REAL", "FAKE")):
        idx = rng.choice(
            np.flatnonzero(first.labels == label), size=min(per, int((first.labels == label).sum())), replace=False
        )
        for k, ax in enumerate(axes[label * per // cols : (label + 1) * per // cols].ravel()):
            ax.axis("off")
            if k < len(idx):
                ax.imshow(first.images[idx[k]], interpolation="nearest")
                if k % cols == 0:
                    ax.set_title(name, fontsize=8, loc="left")
    fig.suptitle("random samples: REAL (top), FAKE (bottom)")
    files = [_save(fig, out_dir / "samples.png")]

    names = list(splits)
    fig, axes = plt.subplots(len(names), 5, figsize=(15, 3.2 * len(names)), constrained_layout=True, squeeze=False)
    for r, split in enumerate(names):
        real, fake = stats[(split, "REAL")], stats[(split, "FAKE")]
        panels = [
            (real["mean"], f"{split} REAL mean image", None),
            (fake["mean"], f"{split} FAKE mean image", None),
            (real["spectrum"], f"{split} REAL log|FFT|", "magma"),
            (fake["spectrum"], f"{split} FAKE log|FFT|", "magma"),
            (fake["spectrum"] - real["spectrum"], "FAKE - REAL log|FFT|", "coolwarm"),
        ]
        half = real["spectrum"].shape[0] // 2
        extent = (-half - 0.5, half - 0.5, half - 0.5, -half - 0.5)  # fftshift: index k is frequency k - 16
        for ax, (img, title, cmap) in zip(axes[r], panels, strict=True):
            if cmap == "coolwarm":
                lim = float(np.abs(img).max()) or 1.0
                im = ax.imshow(img, cmap=cmap, vmin=-lim, vmax=lim, extent=extent)
            elif cmap:
                im = ax.imshow(img, cmap=cmap, extent=extent)
            else:
                im = ax.imshow(np.clip(img, 0, 1))
            ax.set_title(title, fontsize=9)
            if cmap:
                fig.colorbar(im, ax=ax, fraction=0.046)
                ax.set_xlabel("horizontal frequency (cycles / image)", fontsize=8)
                ax.set_ylabel("vertical frequency (cycles / image)", fontsize=8)
                ax.set_xticks([-16, -8, 0, 8, 15])
                ax.set_yticks([-16, -8, 0, 8, 15])
                ax.tick_params(labelsize=7)
            else:
                ax.axis("off")
    files.append(_save(fig, out_dir / "mean_spectrum.png"))
    return files


def gradcam_figure(image, overlaid, title: str, path: str | Path, p_fake: float, threshold: float = 0.5) -> Path:
    """Two panels: the 32x32 image enlarged (nearest) and its Grad-CAM overlay, with a colour bar and
    a caption saying what the heat means for this image's verdict."""
    import matplotlib

    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(7.4, 4.0), constrained_layout=True)
    a1.imshow(image, interpolation="nearest")
    a1.set_title("input (32x32)", fontsize=9)
    a2.imshow(overlaid)
    a2.set_title("Grad-CAM of the FAKE logit", fontsize=9)
    for a in (a1, a2):
        a.axis("off")
    bar = fig.colorbar(
        matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap="jet"), ax=a2, fraction=0.046
    )
    bar.set_label("evidence for FAKE, relative to this image's strongest", fontsize=8)
    label = "FAKE" if p_fake >= threshold else "REAL"
    fig.suptitle(f"{title}\nP(FAKE) {p_fake:.3f} -> {label} (threshold {threshold:.2f})", fontsize=9)
    note = (
        "Red marks where the FAKE score comes from."
        if label == "FAKE"
        else "The verdict is REAL: the map is scaled per image, so its red spot is only\n"
        "the little that pointed to FAKE, not evidence that the image is generated."
    )
    fig.supxlabel(note, fontsize=8)  # constrained layout keeps room for it below the panels
    return _save(fig, Path(path))
