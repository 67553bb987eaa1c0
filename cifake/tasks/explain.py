"""Grad-CAM figures for image files: one PNG per image, the image beside its heatmap (see gradcam.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..base.errors import UserError
from ..models.gradcam import find_target_layer, gradcam, overlay

log = logging.getLogger(__name__)


def unique_names(paths: list[str]) -> list[str]:
    """``<stem>_gradcam.png`` per path; a stem seen before gets ``-2``, ``-3``, ... so no figure overwrites another."""
    from ..base.text import printable

    seen: dict[str, int] = {}
    names = []
    for path in paths:
        stem = printable(Path(path).stem)
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}{'' if seen[stem] == 1 else f'-{seen[stem]}'}_gradcam.png")
    return names


def explain(
    model_path: str | Path, images: list[str], out: str | Path | None = None, layer: str | None = None
) -> list[Path]:
    """Write ``<out>/<stem>_gradcam.png`` (image | heatmap overlay) per readable image; return the paths.

    ``images`` may name files and folders (searched recursively, as in ``cifake predict``); ``out``
    defaults to ``explain/`` beside the model (its run directory; ``runs/pretrained/explain`` for the
    shipped detector).
    """
    from ..base.text import printable
    from ..data.images import collect, load_images
    from ..models.detector import Detector, check_probabilities
    from ..models.plots import gradcam_figure

    if out is None:
        from ..models.detector import resolve_checkpoint
        from ..models.presets import outputs_for

        out = outputs_for(resolve_checkpoint(model_path)) / "explain"
    if Path(out).exists() and not Path(out).is_dir():  # before any work
        raise UserError(f"{{out}} {out} is a file; give a folder for the figures", options=("out",))
    detector = Detector.load(model_path, keras_only="cifake explain (Grad-CAM)")
    model, threshold = detector.model, detector.threshold
    log.info(f"model: {detector.path} (threshold {threshold:.4f}, {detector.threshold_source})")
    files = collect(images)
    if not files:
        raise UserError(f"no image files found in {' '.join(images)}")
    arrays, ok, unreadable, _ = load_images(files)
    for path, why in unreadable:
        log.warning(f"warning: skipped {printable(path)}: {why}")
    if not ok:
        raise UserError("none of the given files could be read as an image")
    inputs = {Path(f).resolve() for f in files}
    clash = next((Path(out) / n for n in unique_names(ok) if (Path(out) / n).resolve() in inputs), None)
    if clash is not None:
        raise UserError(
            f"{{out}} {out}: the figure {clash.name} would replace one of the images being explained; "
            "choose another folder",
            options=("out",),
        )
    cams, probs = gradcam(model, arrays, layer)
    check_probabilities(np.asarray(probs, np.float32), model_path)
    target = find_target_layer(model, layer).name
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for img, cam, p, path, name in zip(arrays, cams, probs, ok, unique_names(ok), strict=True):
        dest = out / name
        title = f"{printable(Path(path).name)} (Grad-CAM at {target})"
        gradcam_figure(img, overlay(img, cam), title, dest, float(p), threshold)
        log.info(f"{printable(path)}: P(FAKE) {p:.4f} -> {dest}")
        written.append(dest)
    log.info(f"wrote {len(written)} figure(s) to {out}/")
    return written
