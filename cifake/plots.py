"""Matplotlib figures (Agg backend, imported only when a figure is drawn)."""

from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(rows: list[dict[str, float]], path: str | Path) -> Path:
    """curves.png: loss, accuracy, precision/recall, AUC and learning rate per epoch, train vs val."""
    plt = _plt()
    epochs = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.6), constrained_layout=True)
    for ax, metric in zip(axes[:4], ("loss", "accuracy", "precision", "auc"), strict=True):
        keys = ("precision", "recall") if metric == "precision" else (metric,)
        for key in keys:
            style = "--" if key == "recall" else "-"
            ax.plot(epochs, [r[key] for r in rows], style, color="tab:blue", label=f"train {key}")
            ax.plot(epochs, [r[f"val_{key}"] for r in rows], style, color="tab:orange", label=f"val {key}")
        ax.set_title("precision / recall (FAKE = 1)" if metric == "precision" else metric)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[4].plot(epochs, [r["lr"] for r in rows], color="tab:green")
    axes[4].set_title("learning rate (end of epoch)")
    axes[4].set_xlabel("epoch")
    axes[4].grid(alpha=0.3)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
