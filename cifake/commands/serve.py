"""cifake serve: a local web app to score uploaded images, with Grad-CAM overlays."""

from __future__ import annotations

from ._options import add_pixel_cap, port, positive_int, positive_number

HELP = "a local web app (Gradio): upload images, see P(FAKE) and Grad-CAM"
DESCRIPTION = (
    "Start a Gradio app: upload one or several images and see P(FAKE), the label and a Grad-CAM\n"
    "overlay per image, with the shipped detector or any .keras file given here. Needs the demo\n"
    "extra: pip install '.[demo]' in the repository. Listens on 127.0.0.1 unless --host says otherwise."
)
EXAMPLE = "cifake serve runs/small_cnn/best.keras --port 7860"


def add_arguments(p) -> None:
    p.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help=".keras files or run directories to offer besides the shipped detector",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes the app to your network)")
    p.add_argument("--port", type=port, default=7860, help="port to listen on")
    p.add_argument(
        "--max-mb",
        type=positive_number,
        default=10.0,
        help="uploads larger than this are refused by the server while they arrive (HTTP 413)",
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        help="requests scored at the same time (one large batch then does not hold up the others)",
    )
    add_pixel_cap(p)


def run(args) -> int:
    from ..tasks.serve import serve

    # cli restores SIGINT (a background job of a script starts with it ignored) and turns SIGTERM into
    # the same clean stop: uploads deleted, exit 130 / 143.
    serve(args.models, args.host, args.port, int(args.max_mb * 1e6), args.concurrency)
    return 0
