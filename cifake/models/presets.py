"""The models cifake ships, as records (as keras-hub's ``resnet_presets.py`` lists its presets):
one ``Preset`` per shipped file, and everything that says what ships reads this table: the names
``--model`` and ``load_detector`` accept, the default of ``cifake predict``, the cards, ``cifake
serve``'s model list and ``scripts/export_pretrained.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
# Nothing is ever written inside the installed package: what a command makes from a shipped model
# (evaluate's metrics and figures, explain's overlays, an export) goes here, relative to the current
# folder, beside the runs (git-ignored with them; `cifake runs` lists only folders with a config.yaml).
OUTPUTS_DIR = Path("runs") / "pretrained"


def outputs_for(model: Path) -> Path:
    """Where a command's outputs for ``model`` go by default: beside it (its run directory), or
    ``OUTPUTS_DIR`` for a model shipped inside the package."""
    model = Path(model)
    return OUTPUTS_DIR if model.parent.resolve() == PRETRAINED_DIR else model.parent


@dataclass(frozen=True)
class Preset:
    name: str  # what --model, load_detector() and every checkpoint argument accept
    file: str  # in cifake/pretrained/
    card: str  # its card, beside it: what it was trained on, how it scores
    description: str

    @property
    def path(self) -> Path:
        return PRETRAINED_DIR / self.file

    @property
    def card_path(self) -> Path:
        return PRETRAINED_DIR / self.card


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "pretrained",
            "detector.keras",
            "detector.json",
            "the shipped detector, Keras (float32): trained by configs/detector.yaml, calibrated",
        ),
        Preset(
            "pretrained-int8",
            "detector-int8.tflite",
            "detector-int8.tflite.json",
            "its int8 LiteRT export, faster and smaller; used when its card shows parity with the Keras file",
        ),
    )
}
PRETRAINED = PRESETS["pretrained"].path
PRETRAINED_INT8 = PRESETS["pretrained-int8"].path


def preset(name: str) -> Preset | None:
    """The shipped model called ``name`` (an old name, e.g. 'robust', says so once and counts)."""
    from ..base.renames import warn

    if (r := warn("model", name)) is not None:
        name = r.new
    return PRESETS.get(name)


def names() -> list[str]:
    """Every name that selects a shipped model, the old ones last."""
    from ..base.renames import old_names

    return [*PRESETS, *old_names("model")]
