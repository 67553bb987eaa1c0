"""cifake fakes: generators fitted on training-split REAL images only, CIFAKE's JPEG format, the layout
that data.extra_fake and per-source evaluation read, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from cifake.cli import main
from cifake.config import DataConfig
from cifake.data.listing import load_splits
from cifake.tasks import fakes

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = ["--val-fraction", "0.25", "--epochs", "1", "--fit-images", "24", "--train-images", "6", "--eval-images", "4"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fakes")
    data = make_dataset(root / "data", per_class=40)
    out = root / "fakes"
    assert main(["fakes", "--data-dir", str(data), "--out", str(out), "--split-seed", "7", *TINY]) == 0
    return data, out


def _jpeg_format(path: Path) -> tuple[dict, int]:
    with Image.open(path) as im:
        return dict(im.quantization), JpegImagePlugin.get_sampling(im)


def test_every_family_writes_cifake_formatted_fakes_beside_validation_reals(made):
    data, out = made
    cifake_format = _jpeg_format(sorted((data / "train" / "REAL").iterdir())[0])
    val = load_splits(DataConfig(dir=str(data), split_seed=7, val_fraction=0.25), progress=False)["val"]
    val_real = {Path(p).name for p, y in zip(val.paths, val.labels, strict=True) if y == 0}
    copied = sorted((out / "val" / "REAL").iterdir())
    assert len(copied) == 4 and {p.name for p in copied} <= val_real  # validation REALs, never training ones
    for name in fakes.FAMILIES:
        train_files = sorted((out / "train" / "FAKE" / name).glob("*.jpg"))
        val_files = sorted((out / "val" / "FAKE" / name).glob("*.jpg"))
        assert len(train_files) == 6 and len(val_files) == 4, name
        for f in train_files[:2] + val_files[:2]:
            assert _jpeg_format(f) == cifake_format, f  # the file format carries no signal
            arr = np.asarray(Image.open(f))
            assert arr.shape == (32, 32, 3) and arr.std() > 0, f
    record = json.loads((out / "fakes.json").read_text())
    assert set(record["generators"]) == set(fakes.FAMILIES) and record["split_seed"] == 7
    assert record["generators"]["dcgan"]["train_images"] == 6


def test_generators_are_fitted_on_training_reals_only(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "data", per_class=40)
    cfg = DataConfig(dir=str(data), val_fraction=0.25)
    seen: list[np.ndarray] = []

    def fit(x, epochs, seed):
        seen.append(x)
        return lambda n, rng, source: source if source is not None else np.zeros((n, 32, 32, 3), np.float32)

    monkeypatch.setitem(fakes.FAMILIES, "copy", fakes.Family(fit, 1, True, "identity reconstructions"))
    fakes.make_fakes(
        cfg, tmp_path / "out", generators=["copy"], train_images=5, eval_images=3, fit_images=1000, progress=False
    )
    splits = load_splits(cfg, progress=False)
    train_real = splits["train"].images[splits["train"].labels == 0]
    others = np.concatenate([splits["val"].images, splits["train"].images[splits["train"].labels == 1]])
    fitted = np.rint(seen[0] * 255).astype(np.uint8)
    assert len(fitted) == len(train_real)  # all of them (fit_images above the count)
    as_rows = {a.tobytes() for a in train_real}
    assert all(a.tobytes() in as_rows for a in fitted)
    assert not {a.tobytes() for a in others} & {a.tobytes() for a in fitted}
    # an identity "generator" reproduces its sources up to one JPEG pass: evaluation fakes rebuild
    # exactly the copied validation REALs
    rebuilt = sorted((tmp_path / "out" / "val" / "FAKE" / "copy").iterdir())
    reals = sorted((tmp_path / "out" / "val" / "REAL").iterdir())
    a = np.stack([np.asarray(Image.open(f), np.float32) for f in rebuilt])
    b = np.stack([np.asarray(Image.open(f), np.float32) for f in reals])
    assert len(a) == len(b) == 3 and np.abs(a - b).mean() < 8


def test_refuses_to_overwrite_unknown_generators_and_missing_tables(made, tmp_path, capsys):
    data, out = made
    argv = ["fakes", "--data-dir", str(data), "--out", str(out), "--generators", "vae", "--split-seed", "7", *TINY]
    before = sorted((out / "train" / "FAKE" / "vae").iterdir())
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert sorted((out / "train" / "FAKE" / "vae").iterdir()) == before
    assert main([*argv, "--force"]) == 0
    assert len(list((out / "train" / "FAKE" / "vae").iterdir())) == 6
    assert set(json.loads((out / "fakes.json").read_text())["generators"]) == set(fakes.FAMILIES)  # merged
    assert main(["fakes", "--data-dir", str(data), "--out", str(tmp_path / "o"), "--generators", "stylegan"]) == 2
    assert "autoencoder, vae, dcgan, diffusion" in capsys.readouterr().err
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert main(["fakes", "--data-dir", str(data), "--out", str(a_file), *TINY]) == 2
    assert "--out" in capsys.readouterr().err and a_file.read_text() == "mine"
    pngs = tmp_path / "pngs"
    for cls in ("REAL", "FAKE"):
        (pngs / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(pngs / "train" / cls / "a.png")
    assert main(["fakes", "--data-dir", str(pngs), "--out", str(tmp_path / "o2")]) == 2
    assert "quantisation tables" in capsys.readouterr().err


def test_fakes_feed_training_and_per_generator_evaluation(made, tmp_path, capsys):
    data, out = made
    runs = tmp_path / "runs"
    argv = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data}", "data.fraction=1.0"]
    argv += [
        "data.split_seed=7",
        "data.val_fraction=0.25",
        f"data.extra_fake=[{out / 'train' / 'FAKE'}]",
        f"train.runs_dir={runs}",
    ]
    assert main([*argv, "train.epochs=1", "--name", "r"]) == 0
    assert f"data.extra_fake: {6 * len(fakes.FAMILIES)} FAKE training images" in capsys.readouterr().out
    assert main(["evaluate", str(runs / "r"), "--data-dir", str(out / "val"), "--out", str(tmp_path / "ev")]) == 0
    rows = json.loads((tmp_path / "ev" / "metrics.json").read_text())["evaluate"]["sources"]["per_source"]
    assert set(rows) == set(fakes.FAMILIES) and all(r["images"] == 4 for r in rows.values())
    # the shipped recipe names fakes/train/FAKE: without it, training stops at once and says how to make it
    missing = [f"data.dir={data}", f"data.extra_fake=[{tmp_path / 'none'}]", f"train.runs_dir={tmp_path / 'r2'}"]
    assert main(["train", "--config", str(REPO / "configs" / "detector.yaml"), *missing]) == 2
    assert "cifake fakes --out" in capsys.readouterr().err and not (tmp_path / "r2").exists()


def test_leave_one_out_table_holds_out_each_generator_in_turn(made, tmp_path):
    import subprocess
    import sys

    data, out = made
    two = tmp_path / "two"
    for part in ("train/FAKE/vae", "train/FAKE/dcgan", "val/FAKE/vae", "val/FAKE/dcgan", "val/REAL"):
        (two / part).parent.mkdir(parents=True, exist_ok=True)
        (two / part).symlink_to(out / part, target_is_directory=True)
    table_file = tmp_path / "logo.json"
    cmd = [sys.executable, str(REPO / "scripts" / "leave_one_out.py"), "--fakes", str(two), "--json", str(table_file)]
    cmd += ["--config", str(REPO / "configs" / "smoke.yaml"), "--runs-dir", str(tmp_path / "runs")]
    cmd += [f"data.dir={data}", "data.fraction=1.0", "data.split_seed=7", "data.val_fraction=0.25", "train.epochs=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    table = json.loads(table_file.read_text())
    assert list(table) == ["none", "dcgan", "vae"]
    assert table["none"]["trained_with"] == [] and table["vae"]["trained_with"] == ["dcgan"]
    assert all(set(row["sources"]) == {"dcgan", "vae"} for row in table.values())
    assert "all but vae" in done.stdout and "CIFAKE only" in done.stdout
    config = (tmp_path / "runs" / "logo_vae" / "config.yaml").read_text()
    assert "dcgan" in config and "FAKE/vae" not in config  # the held-out generator never reached training
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert again.returncode == 0 and "$ cifake train" not in again.stdout  # finished runs are not retrained


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (["--seed", "-1"], "argument --seed"),
        (["--split-seed", "-1"], "data.split_seed"),
        (["--val-fraction", "0.95"], "data.val_fraction"),
        (["--generators", ","], "no generator given"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(made, tmp_path, capsys, bad, said):
    data, _ = made
    out = tmp_path / "o"
    assert main(["fakes", "--data-dir", str(data), "--out", str(out), *bad]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cifake fakes: error:")]
    assert len(errors) == 1 and said in errors[0]  # one error line (argparse's usage lines may precede it)
    assert not out.exists()


def test_an_interrupted_generator_leaves_its_old_fakes_and_no_partial_folder(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "data", per_class=40)
    cfg = DataConfig(dir=str(data), val_fraction=0.25)
    out = tmp_path / "out"
    calls: list[str] = []

    def fit(x, epochs, seed):
        def make(n, rng, source):
            calls.append("make")
            if len(calls) == 4:  # the second run's evaluation fakes: its training fakes are written by then
                raise KeyboardInterrupt
            return np.full((n, 32, 32, 3), 0.5, np.float32)

        return make

    monkeypatch.setitem(fakes.FAMILIES, "flat", fakes.Family(fit, 1, False, "grey squares"))
    how = {"generators": ["flat"], "train_images": 5, "eval_images": 3, "fit_images": 10, "progress": False}
    fakes.make_fakes(cfg, out, **how)
    before = sorted(p.name for p in (out / "train" / "FAKE" / "flat").iterdir())
    with pytest.raises(KeyboardInterrupt):
        fakes.make_fakes(cfg, out, force=True, **{**how, "train_images": 7})
    assert sorted(p.name for p in (out / "train" / "FAKE" / "flat").iterdir()) == before  # the old set, whole
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no staging folder left
    assert len(list((out / "val" / "FAKE" / "flat").iterdir())) == 3
