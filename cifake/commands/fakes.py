"""cifake fakes: train small generators of other families here and write their fakes."""

from __future__ import annotations

from ._options import add_split_args, positive_int, seed, split_data_config

HELP = "make fakes of other generator families (autoencoder, VAE, DCGAN, diffusion) from the REAL images"
DESCRIPTION = (
    "Train small generative models on the REAL images of the training split (never validation) and\n"
    "write their output as JPEGs with the quantisation tables of a CIFAKE file:\n"
    "  OUT/train/FAKE/<generator>/  fakes to add to training (config key data.extra_fake)\n"
    "  OUT/val/REAL/, OUT/val/FAKE/<generator>/  a per-generator evaluation set:\n"
    "      cifake evaluate RUN --data-dir OUT/val\n"
    "Generators: autoencoder (reconstructions), vae (samples), dcgan (samples), diffusion (noised\n"
    "and denoised reconstructions). Train with all but one and evaluate on that one to measure\n"
    "whether a detector generalises to a generator it never saw. The whole default set takes about\n"
    "15 minutes on 2 CPU cores."
)
EXAMPLE = "cifake fakes --data-dir data/cifake --out fakes && cifake train --config configs/detector.yaml"


def add_arguments(p) -> None:
    from ..tasks.fakes import FAMILIES

    add_split_args(p, "these fakes")
    p.add_argument("--out", default="fakes", help="output folder (see the layout above)")
    p.add_argument(
        "--generators",
        default=",".join(FAMILIES),
        help=f"comma-separated families to make (default: all of {', '.join(FAMILIES)})",
    )
    p.add_argument("--train-images", type=positive_int, default=5000, help="training fakes per generator")
    p.add_argument(
        "--eval-images", type=positive_int, default=1000, help="evaluation fakes per generator (and REAL copies)"
    )
    p.add_argument(
        "--fit-images", type=positive_int, default=20000, help="REAL training images each generator is fitted on"
    )
    p.add_argument(
        "--epochs", type=positive_int, default=None, help="epochs per generator (default: each family's own)"
    )
    p.add_argument("--seed", type=seed, default=0, help="seed of the generators and their samples")
    p.add_argument("--force", action="store_true", help="replace fakes this run would make that already exist")


def run(args) -> int:
    from ..tasks.fakes import make_fakes

    record = make_fakes(
        split_data_config(args),
        args.out,
        generators=[g.strip() for g in args.generators.split(",") if g.strip()],
        train_images=args.train_images,
        eval_images=args.eval_images,
        fit_images=args.fit_images,
        epochs=args.epochs,
        seed=args.seed,
        force=args.force,
    )
    for name, g in record["generators"].items():
        print(
            f"  {name:12s} {g['train_images']:>6,} training + {g['eval_images']:>5,} evaluation fakes  ({g['seconds']:.0f} s)"
        )
    print(f"train with:  data.extra_fake=[{args.out}/train/FAKE]   evaluate with:  --data-dir {args.out}/val")
    return 0
