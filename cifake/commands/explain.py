"""cifake explain: Grad-CAM heatmaps of where the FAKE score comes from."""

from __future__ import annotations

from ._options import add_pixel_cap

HELP = "Grad-CAM heatmaps: where in the image the FAKE score comes from"
DESCRIPTION = (
    "Write <out>/<name>_gradcam.png per image: the image beside a Grad-CAM heatmap of the FAKE\n"
    "logit at the last convolutional feature map (found automatically, or --layer). Images are\n"
    "prepared as in cifake predict."
)
EXAMPLE = "cifake explain runs/small_cnn photo.jpg other.png      # -> runs/small_cnn/explain/"


def add_arguments(p) -> None:
    p.add_argument("model", help=".keras file, run directory, or 'pretrained' for the shipped detector")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders (searched recursively)")
    p.add_argument(
        "--out",
        default=None,
        help="folder for the overlay PNGs (created); default: explain/ beside the model (its run directory), "
        "runs/pretrained/explain for the shipped detector",
    )
    p.add_argument("--layer", default=None, help="name of the layer to explain (default: the last 4-D feature map)")
    add_pixel_cap(p)


def run(args) -> int:
    from ..tasks.explain import explain

    explain(args.model, args.images, args.out, args.layer)  # 'pretrained' resolves to the shipped detector
    return 0
