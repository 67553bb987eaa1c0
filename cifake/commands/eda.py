"""cifake eda: a report on a dataset folder."""

from __future__ import annotations

from ..config import DataConfig
from ._options import add_pixel_cap, positive_int

HELP = "a dataset report: counts, samples, mean spectra, duplicates"
DESCRIPTION = (
    "Write a Markdown report with PNG figures and duplicates.csv about a dataset folder: counts per\n"
    "split, class and CIFAR-10 subject; random samples; per-class mean image and mean log-magnitude\n"
    "spectrum; byte-identical and near-duplicate files within and across splits."
)
EXAMPLE = "cifake eda --data-dir data/cifake --out reports/eda"


def add_arguments(p) -> None:
    p.add_argument("--data-dir", default=DataConfig().dir, help="dataset root (config key data.dir)")
    p.add_argument("--out", default="reports/eda", help="report folder (created)")
    p.add_argument("--samples", type=positive_int, default=32, help="sample images per class in samples.png")
    add_pixel_cap(p)


def run(args) -> int:
    from ..tasks.eda import report

    report(args.data_dir, args.out, args.samples)
    return 0
