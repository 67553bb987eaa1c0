#!/usr/bin/env python
"""Refresh the README's figures: docs/gradcam.png and docs/serve.png, from validation images.

    python scripts/make_docs_figures.py --data-dir data/cifake [--model runs/NAME]

Picks 4 REAL and 4 FAKE images of the seeded validation split (never test), explains them with
Grad-CAM, and takes a screenshot of `cifake serve` in headless Chromium scoring three of them.
Only figures are written; no dataset file is copied into the repository.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/cifake")
    ap.add_argument("--model", default=None, help="default: the shipped detector")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()

    from cifake.config import DataConfig
    from cifake.data.listing import load_splits
    from cifake.models.detector import load_model_file
    from cifake.models.gradcam import find_target_layer, gradcam, overlay
    from cifake.models.plots import _plt, _save
    from cifake.models.presets import PRETRAINED

    model_path = args.model or PRETRAINED
    model = load_model_file(model_path)
    val = load_splits(DataConfig(dir=args.data_dir), progress=False)["val"]
    rng = np.random.default_rng(7)
    idx = np.concatenate([rng.choice(np.flatnonzero(val.labels == k), 4, replace=False) for k in (0, 1)])
    cams, probs = gradcam(model, val.images[idx])
    plt = _plt()
    fig, axes = plt.subplots(2, 8, figsize=(16, 4.6), constrained_layout=True)
    for col, (i, cam, p) in enumerate(zip(idx, cams, probs, strict=True)):
        truth = "FAKE" if val.labels[i] else "REAL"
        axes[0, col].imshow(val.images[i], interpolation="nearest")
        axes[0, col].set_title(f"{Path(val.paths[i]).name}\ntrue {truth}", fontsize=8)
        axes[1, col].imshow(overlay(val.images[i], cam))
        axes[1, col].set_title(f"P(FAKE) {p:.3f}", fontsize=8)
    for a in axes.ravel():
        a.axis("off")
    fig.suptitle(f"Grad-CAM of the FAKE logit at {find_target_layer(model).name} (validation images)")
    DOCS.mkdir(exist_ok=True)
    _save(fig, DOCS / "gradcam.png")
    print(f"wrote {DOCS / 'gradcam.png'}")

    from playwright.sync_api import sync_playwright

    from cifake.tasks.serve import build_app, launch, model_choices

    with tempfile.TemporaryDirectory() as tmp:
        picks = [idx[0], idx[4], idx[5]]
        files = []
        for i in picks:
            dest = Path(tmp) / Path(val.paths[i]).name
            shutil.copy(val.paths[i], dest)
            files.append(str(dest))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        app = build_app(model_choices([] if args.model is None else [args.model]), max_bytes=10_000_000)
        launch(app, "127.0.0.1", port, block=False)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=args.chromium,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
                )
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=60_000)
                page.locator("#uploads input[type=file]").set_input_files(files)
                page.wait_for_timeout(1500)
                page.locator("#score").click()
                page.get_by_text(f"Scored {len(files)} image(s)").wait_for(timeout=60_000)
                page.locator("#gradcam img").first.wait_for(timeout=30_000)
                page.wait_for_timeout(500)
                page.screenshot(path=str(DOCS / "serve.png"), full_page=True)
                browser.close()
        finally:
            app.close()
    print(f"wrote {DOCS / 'serve.png'}")


if __name__ == "__main__":
    main()
