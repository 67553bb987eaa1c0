"""The README's Quick start, run as written on a tiny dataset: every `cifake` line of its code block.

Only what cannot run here is left out, and said: `cifake download` without --archive (Kaggle), `make
detector` (an hour), `tensorboard` and `cifake serve` (servers; tests/test_serve.py runs the app). The
rest gets the README's own arguments with three substitutions: the archive, photos and generators
the README names are tiny ones made here; `cifake train` and `cifake fakes` get options that make
them take seconds (1 epoch, all of a 100-image dataset); the commands' exit codes and outputs are
checked, `cifake export runs/small_cnn --int8` included.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifake.cli import main

from .conftest import make_zip
from .test_generators import make_generators, zipped

REPO = Path(__file__).resolve().parents[1]
NOT_HERE = {"download": "needs Kaggle", "serve": "a server (tests/test_serve.py)"}
FAST = {
    "train": ["train.epochs=1", "data.fraction=1.0", "data.val_fraction=0.25"],
    "fakes": [
        "--val-fraction",
        "0.25",
        "--epochs",
        "1",
        "--fit-images",
        "24",
        "--train-images",
        "6",
        "--eval-images",
        "4",
    ],
    "generators": ["--val-fraction", "0.25", "--real-images", "4"],
    "evaluate": [],
}


def quick_start() -> list[str]:
    """The command lines of the README's Quick start block, comments removed."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Quick start\s+```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_the_quick_start_block_is_what_this_test_runs():
    lines = quick_start()
    assert any(line.startswith("cifake export runs/small_cnn --int8") for line in lines)
    assert all(line.split()[0] in ("cifake", "make", "tensorboard") for line in lines)


@pytest.mark.slow
def test_every_quick_start_command_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the README runs from the repository root: its configs/ are here
    (tmp_path / "configs").symlink_to(REPO / "configs", target_is_directory=True)
    archive = make_zip(tmp_path / "archive.zip", per_class=50, splits=("train",))
    photos = tmp_path / "my_photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(photos / f"p{i}.jpg")
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    zipped(make_generators(tmp_path / "gsrc"), tmp_path / "generators.zip")
    ran = []
    for line in quick_start():
        argv = shlex.split(line.replace("~/Downloads/archive.zip", str(archive)))
        if argv[0] != "cifake" or (argv[1] in NOT_HERE and "--archive" not in argv):
            continue
        argv = argv[1:] + FAST.get(argv[1], [])
        code = main(argv)
        err = capsys.readouterr().err
        assert code in (0, 3 if argv[0] == "generators" else 0), f"cifake {' '.join(argv)} -> {code}\n{err[-1500:]}"
        ran.append(argv[0])
        if argv[0] == "export":
            card = next((tmp_path / "runs" / "small_cnn").glob("best-int8.tflite.json"))
            assert '"quantization": "int8 weights, float activations (dynamic range)"' in card.read_text()
    assert ran.count("train") == 3 and {"download", "fakes", "generators", "runs", "evaluate", "export"} <= set(ran)
    assert {"predict", "eda", "explain", "cache"} <= set(ran)
    assert (tmp_path / "predictions.csv").is_file() and (tmp_path / "reports" / "eda" / "report.md").is_file()
    assert (tmp_path / "runs" / "pretrained" / "explain" / "photo_gradcam.png").is_file()
