"""cifake export: convert a detector for serving, checked against the Keras model."""

from __future__ import annotations

from ._options import nonnegative_int

HELP = "convert a detector to LiteRT (float32 or int8), SavedModel or ONNX, checked against Keras"
DESCRIPTION = (
    "Convert a .keras model (or a run directory: its best.keras) for serving. Every export scores the\n"
    "run's validation images beside the Keras model before it is kept: max |delta P(FAKE)|, label\n"
    "agreement and both accuracies are printed and stored in a card beside it (OUT.json). An int8\n"
    "export that agrees on fewer than 99.5% of labels is refused (exit 2). .tflite files work\n"
    "wherever a model is accepted (predict, evaluate, serve).\n"
    "--int8 stores int8 weights and computes in float (no calibration; scores keep their full\n"
    "resolution); --int8-activations quantises the activations too (full-integer, calibrated;\n"
    "scores in steps of 1/256, and small networks often miss the 99.5%)."
)
EXAMPLE = "cifake export runs/small_cnn --format litert --int8"


def add_arguments(p) -> None:
    from ..tasks.export import FORMATS

    p.add_argument("model", help=".keras file, run directory, or pretrained")
    p.add_argument("--format", choices=FORMATS, default="litert", help="what to write")
    p.add_argument(
        "--int8",
        action="store_true",
        help="litert only: int8 weights, float activations (dynamic-range quantization; no calibration)",
    )
    p.add_argument(
        "--int8-activations",
        action="store_true",
        help="litert only: full-integer quantization (weights and activations), calibrated on 512 training images",
    )
    p.add_argument(
        "--out",
        metavar="PATH",
        help="file (or folder for savedmodel) to write; default: beside the model, e.g. best-int8.tflite",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="dataset for the check and the calibration; default: the run's data.dir, else data/cifake",
    )
    p.add_argument(
        "--calibration", metavar="DIR", help="--int8-activations: calibrate on the images under this folder instead"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing export of the same format at --out (any other existing file is never replaced)",
    )
    p.add_argument(
        "--check-images",
        type=nonnegative_int,
        default=0,
        metavar="N",
        help="validation images for the check; 0 = the whole validation split",
    )


def run(args) -> int:
    from ..base.errors import UserError
    from ..tasks.export import FORMATS, export

    int8 = args.int8 or args.int8_activations
    if int8 and not FORMATS[args.format].int8:
        offered = ", ".join(f"--format {name}" for name, f in FORMATS.items() if f.int8)
        raise UserError(f"--int8 and --int8-activations (post-training quantization) are for {offered} only")
    if args.calibration and not args.int8_activations:
        raise UserError("--calibration calibrates --int8-activations; --int8 alone needs no calibration images")

    export(
        args.model,
        args.format,
        int8=int8,
        int8_activations=args.int8_activations,
        out=args.out,
        data_dir=args.data_dir,
        calibration=args.calibration,
        check_images=args.check_images,
        force=args.force,
    )
    return 0
