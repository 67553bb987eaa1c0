#!/usr/bin/env python
"""One image, end to end: seconds from process start to the table printed, and the cost of `import cifake`.

    python scripts/bench_single.py [--repeats 5] [--image photo.jpg] [--model pretrained]

Each repeat is a new process (`cifake predict IMAGE`, the console script), timed from the parent,
so Python's start-up, the imports, loading the model and decoding are all counted. Also printed:
`python -c "import cifake"`, and whether TensorFlow was imported by a prediction with the model
(`tensorflow` in sys.modules after `cli.main`). Prints the median and the spread of the repeats.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--image", type=Path, help="default: a 32x32 JPEG made here")
    ap.add_argument("--model", default=None, help="default: the shipped default (the int8 LiteRT export)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        image = args.image
        if image is None:
            import numpy as np
            from PIL import Image

            image = Path(tmp) / "one.jpg"
            Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
        exe = shutil.which("cifake") or sys.exit("the cifake console script is not on PATH (pip install -e .)")
        argv = [exe, "predict", str(image), *(["--model", args.model] if args.model else [])]
        timed(argv)  # warm the OS file cache for every later repeat alike
        runs = [timed(argv) for _ in range(args.repeats)]
        imports = [timed([sys.executable, "-c", "import cifake"]) for _ in range(args.repeats)]
        python = [timed([sys.executable, "-c", "pass"]) for _ in range(args.repeats)]
        probe = (
            "import sys; from cifake.cli import main; main(['predict', sys.argv[1]] + sys.argv[2:]); "
            "print('TF' if 'tensorflow' in sys.modules else 'NO-TF')"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe, str(image), *(["--model", args.model] if args.model else [])],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]

    def show(name: str, xs: list[float]) -> None:
        print(f"{name:<44} median {statistics.median(xs):6.3f} s   min {min(xs):6.3f}   max {max(xs):6.3f}")

    print(f"{len(runs)} repeats, model: {args.model or 'the default'}")
    show("cifake predict one image (process, wall)", runs)
    show("python -c 'import cifake'", imports)
    show("python -c 'pass' (the interpreter alone)", python)
    print(f"import cifake alone: {statistics.median(imports) - statistics.median(python):.3f} s over the interpreter")
    print(f"TensorFlow imported by the prediction: {'yes' if out == 'TF' else 'no'}")


if __name__ == "__main__":
    main()
