"""cifake generators: import other projects' generators' samples for training and per-generator evaluation."""

from __future__ import annotations

from ._options import add_split_args, positive_int, seed, split_data_config

HELP = "import samples of other generators (a zip or folder of <generator>/ folders) for training and evaluation"
DESCRIPTION = (
    "Read a zip or folder holding one folder of images per generator (e.g. generators.zip, with its\n"
    "generators.tsv of families and sources), encode every sample as CIFAKE's files are encoded (JPEG\n"
    "with a CIFAKE file's quantisation tables and subsampling) and lay them out:\n"
    "  OUT/train/FAKE/<generator>/  a seeded share of each generator, for data.extra_fake\n"
    "  OUT/val/FAKE/<generator>/    the rest (identical samples never split), for evaluation only\n"
    "  OUT/val/REAL/                copies of photos of the seeded validation split of --data-dir\n"
    "  OUT/generators.json          family, benchmark group and source of each generator\n"
    "Then: cifake evaluate RUN --data-dir OUT/val (per generator), and leave one family out of\n"
    "training with scripts/leave_one_out.py --generators OUT --by group. Exit 3 when some files did\n"
    "not decode (they are skipped and named)."
)
EXAMPLE = "cifake generators ../shared/data/generators.zip --data-dir data/cifake --out generators"


def add_arguments(p) -> None:
    p.add_argument("source", help="a zip or folder holding <generator>/ folders of images (and generators.tsv)")
    add_split_args(p, "these samples")
    p.add_argument("--out", default="generators", help="output folder (see the layout above)")
    p.add_argument(
        "--val-share", type=float, default=0.5, help="share of each generator's distinct samples kept for evaluation"
    )
    p.add_argument("--real-images", type=positive_int, default=1000, help="validation photos copied to OUT/val/REAL")
    p.add_argument("--seed", type=seed, default=0, help="seed of the train/evaluation share and the photos drawn")
    p.add_argument("--force", action="store_true", help="replace OUT/train and OUT/val if they exist")


def run(args) -> int:
    from ..tasks.generators import import_generators

    record = import_generators(
        args.source,
        args.out,
        split_data_config(args),
        val_share=args.val_share,
        real_images=args.real_images,
        seed=args.seed,
        force=args.force,
    )
    return 3 if record["skipped"] else 0
