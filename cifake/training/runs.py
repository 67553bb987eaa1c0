"""``cifake runs``: the run directories under a folder as a table, and their curves side by side.

Reads only what the trainer wrote (config.yaml, results.csv, metrics.json), so it is instant and
works on runs that are still going, were interrupted, or crashed.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..base.errors import UserError
from ..base.progress import duration


def run_summary(run_dir: Path) -> dict:
    """One run's row: name, model, parameters, epochs done/planned, best val accuracy and epoch, wall, state.

    A run whose files cannot be read is listed as damaged (with why) rather than stopping the listing.
    """
    try:
        return _summary(run_dir)
    except (UserError, OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        return {
            "name": run_dir.name,
            "model": "?",
            "parameters": None,
            "macs": None,
            "epochs": 0,
            "planned": "?",
            "best_val_accuracy": None,
            "best_epoch": None,
            "seconds": 0.0,
            "finished": False,
            "damaged": why[:100],
        }


def _summary(run_dir: Path) -> dict:
    from ..config import config_from_dict, read_yaml
    from .rundir import read_results

    cfg = config_from_dict(read_yaml(run_dir / "config.yaml"))
    rows = read_results(run_dir / "results.csv") if (run_dir / "results.csv").is_file() else []
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    if not isinstance(metrics, dict):
        raise ValueError("metrics.json is not a JSON object")
    best = max(rows, key=lambda r: r["val_accuracy"]) if rows else None
    from ..models.registry import REGISTRY

    spec = REGISTRY.get(cfg.model.name)
    widths = "/".join(str(f) for f in cfg.model.filters) if spec is not None and spec.blocks else ""
    return {
        "name": run_dir.name,
        "model": f"{cfg.model.name}{f' {widths}' if widths else ''}",
        "parameters": metrics.get("parameters"),
        "macs": metrics.get("macs"),
        "epochs": len(rows),
        "planned": cfg.train.epochs,
        "best_val_accuracy": best["val_accuracy"] if best else None,
        "best_epoch": int(best["epoch"]) if best else None,
        "seconds": sum(r["seconds"] for r in rows),
        "finished": bool(metrics),
    }


def find_runs(runs_dir: Path) -> list[Path]:
    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir} is not a folder (runs live in runs/ unless train.runs_dir says otherwise)")
    return sorted(p for p in runs_dir.iterdir() if (p / "config.yaml").is_file())


def table(summaries: list[dict]) -> str:
    lines = [
        f"{'run':<24} {'model':<22} {'params':>9} {'MACs':>7} {'epochs':>7} {'best val acc':>12} {'at':>4} {'train time':>10}  state"
    ]
    for s in summaries:
        params = f"{s['parameters']:,}" if isinstance(s["parameters"], int) else "?"
        macs = f"{s['macs'] / 1e6:.1f}M" if isinstance(s.get("macs"), int) else "?"
        acc = f"{s['best_val_accuracy']:.4f}" if s["best_val_accuracy"] is not None else "-"
        epochs = f"{s['epochs']}/{s['planned']}"
        state = f"damaged: {s['damaged']}" if s.get("damaged") else "finished" if s["finished"] else "unfinished"
        lines.append(
            f"{s['name'][:24]:<24} {s['model'][:22]:<22} {params:>9} {macs:>7} {epochs:>7} {acc:>12} "
            f"{s['best_epoch'] or '-':>4} {duration(s['seconds']):>10}  {state}"
        )
    return "\n".join(lines)
