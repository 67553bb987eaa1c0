"""cifake cache: show or clear the decode cache of a dataset folder."""

from __future__ import annotations

from ..config import DataConfig

HELP = "show or clear the decode cache of a dataset folder"
DESCRIPTION = (
    "List the decode cache of DATA_DIR (<data-dir>/.cifake-cache): one file per whole split, its\n"
    "size, and whether it still matches the split's files (a stale one is never read again).\n"
    "Every data.fraction is a slice of the whole split's file, so the cache does not grow with\n"
    "the fractions you try. --clear removes it; the next run decodes again."
)
EXAMPLE = "cifake cache --data-dir data/cifake --clear"


def add_arguments(p) -> None:
    p.add_argument("--data-dir", default=DataConfig().dir, help="dataset root (config key data.dir)")
    p.add_argument("--clear", action="store_true", help="delete the cache folder")


def run(args) -> int:
    from pathlib import Path

    from ..data.cache import clear, listing
    from ..data.listing import cache_files_in_use

    root = Path(args.data_dir)
    if args.clear:
        print(clear(root))
        return 0
    for line in listing(root, cache_files_in_use(root) if root.is_dir() else {}):
        print(line)
    return 0
