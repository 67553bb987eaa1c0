"""cifake download: fetch CIFAKE from Kaggle, or import a zip the user already has."""

from __future__ import annotations

from ..config import DataConfig

HELP = "fetch CIFAKE from Kaggle, or import a zip you already have"
DESCRIPTION = (
    "Fetch birdy654/cifake-real-and-ai-generated-synthetic-images with the official Kaggle client\n"
    "(kagglehub), or import a local zip with --archive (no network). The data is extracted to a\n"
    "temporary folder, verified (counts, every JPEG decodes) and only then moved into place.\n"
    "Credentials, first found wins: KAGGLE_API_TOKEN, ~/.kaggle/access_token,\n"
    "KAGGLE_USERNAME + KAGGLE_KEY, ~/.kaggle/kaggle.json."
)
EXAMPLE = "cifake download --archive ~/Downloads/archive.zip --data-dir data/cifake"


def add_arguments(p) -> None:
    p.add_argument(
        "--data-dir", default=DataConfig().dir, help="where {train,test}/{REAL,FAKE} will live (config key data.dir)"
    )
    p.add_argument(
        "--archive", metavar="PATH.zip", help="import this zip instead of downloading (full Kaggle zip or train-only)"
    )
    p.add_argument("--force", action="store_true", help="replace a complete dataset that is already there")
    p.add_argument("--verify", action="store_true", help="only re-check an existing folder and list what is wrong")


def run(args) -> int:
    from ..data.download import run as download

    return download(data_dir=args.data_dir, archive=args.archive, force=args.force, verify_only=args.verify)
