"""The wheel users install: built by `python -m build`, it holds the shipped detectors and works outside the repo."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_installs_outside_the_repository_and_scores_an_image(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(REPO)],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0 and "Could not find a version" in built.stdout + built.stderr:
        pytest.skip("no package index to fetch the build backend from (python -m build needs setuptools>=68)")
    assert built.returncode == 0, (built.stdout + built.stderr)[-2000:]
    wheel = next((tmp_path / "dist").glob("cifake-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("detector.keras", "detector.json", "detector-int8.tflite", "detector-int8.tflite.json"):
        assert f"cifake/pretrained/{shipped}" in names
    assert "cifake/commands/predict.py" in names and not any(n.startswith("tests/") for n in names)

    # A fresh environment outside the repository: the wheel itself, without its dependencies, which
    # come from this environment's site-packages through a .pth line (no download, same versions).
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(work / "one.png")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    cli = subprocess.run(
        [str(env_dir / "bin" / "cifake"), "predict", "one.png"], cwd=work, capture_output=True, text=True, env=clean_env
    )
    assert cli.returncode == 0, cli.stderr[-1000:]
    assert "one.png" in cli.stdout and "detector-int8.tflite" in cli.stderr
    api = subprocess.run(
        [
            str(python),
            "-c",
            "import cifake; print(cifake.__file__); print(float(cifake.load_detector().predict('one.png')[0]))",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        env=clean_env,
    )
    assert api.returncode == 0, api.stderr[-1000:]
    where, p = api.stdout.split()
    assert where.startswith(str(env_dir)), where  # the installed wheel, not this checkout
    assert 0.0 <= float(p) <= 1.0
    p_cli = float(next(line for line in cli.stdout.splitlines() if "one.png" in line).split()[1])
    assert abs(p_cli - float(p)) < 5e-5  # the table prints four decimals
