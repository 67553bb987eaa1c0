"""What a new user meets: the training display, TensorBoard files, `cifake runs`, help texts and messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cifake.base.progress
from cifake.cli import build_parser, main
from cifake.commands import NAMES
from cifake.training.train import RESUMABLE_KEYS

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = NAMES


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A runs folder with two finished runs (one without TensorBoard) and one that stopped after an epoch."""
    root = tmp_path_factory.mktemp("newcomer")
    data = make_dataset(root / "cifake", per_class=40)
    base = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data}"]
    base += [f"train.runs_dir={root / 'runs'}", "data.fraction=1.0", "train.batch_size=16"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cifake.base.progress, "QUIET_SECONDS", 0.0)  # every 10% line, however short the epoch
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main([*base, "train.epochs=3", "train.batch_size=4", "--name", "a"]) == 0  # 16 steps
        (root / "display.txt").write_text(out.getvalue())
    assert main([*base, "train.epochs=2", "train.tensorboard=false", "model.filters=[8,16]", "--name", "b"]) == 0
    unfinished = root / "runs" / "c"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((root / "runs" / "a" / "config.yaml").read_text())
    lines = (root / "runs" / "a" / "results.csv").read_text().splitlines()
    (unfinished / "results.csv").write_text("\n".join(lines[:2]) + "\n")
    return root


def test_one_display_without_a_terminal(runs):
    out = (runs / "display.txt").read_text()
    for epoch in (1, 2, 3):
        assert len(re.findall(rf"^epoch +{epoch}/3 .* loss ", out, re.M)) == 1  # each epoch's metrics once
        assert len(re.findall(rf"^  epoch {epoch}/3: \d+% ", out, re.M)) == 9  # a line per 10% of the 16 steps
    assert "step - loss" not in out and "━" not in out  # no Keras progress bar or its repeated metrics
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert "ETA" in epoch_lines[0] and "ETA" in epoch_lines[1] and "ETA" not in epoch_lines[2]
    assert "evaluating best.keras on the validation split" in out
    assert re.search(r"^run directory: .*/a \(wall time \d+\.\ds\)$", out, re.M)


def test_tensorboard_event_files_hold_the_epoch_scalars(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = runs / "runs" / "a" / "tensorboard"
    tags = {}
    for part in ("train", "validation"):
        files = list((board / part).glob("events.out.tfevents.*"))
        assert files, part
        acc = EventAccumulator(str(board / part))
        acc.Reload()
        tags[part] = set(acc.Tags()["tensors"])
    assert {"epoch_accuracy", "epoch_loss", "epoch_learning_rate"} <= tags["train"]
    assert {"epoch_accuracy", "epoch_loss"} <= tags["validation"]
    assert not (runs / "runs" / "b" / "tensorboard").exists()  # train.tensorboard=false


def test_runs_table_and_compare(runs, capsys):
    assert main(["runs", str(runs / "runs")]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:4]}
    assert set(rows) == {"a", "b", "c"}
    assert re.search(r"small_cnn 16/32 +[\d,]+ +\d+\.\dM +3/3 +\d\.\d{4} +\d .* finished$", rows["a"])  # MACs
    assert re.search(r"small_cnn 8/16 .* 2/2 .* finished$", rows["b"])
    assert re.search(r" \? +\? +1/3 .* unfinished$", rows["c"])  # no metrics.json yet: parameters, MACs unknown
    png = runs / "compare.png"
    assert main(["runs", str(runs / "runs"), "--compare", "a", "b", str(runs / "runs" / "c"), "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000
    assert main(["runs", str(runs / "runs"), "--compare", "nope"]) == 2
    assert "no results.csv" in capsys.readouterr().err
    assert main(["runs", str(runs / "missing")]) == 2


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help_shows_each_default_once_and_only_when_it_says_something(sub, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([sub, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare the words
    assert "(default: None)" not in text and "(default: False)" not in text and "(default: [])" not in text
    for chunk in re.split(r"\s-{1,2}[a-z]", text):  # one option's help at a time
        assert chunk.lower().count("default") <= 1, chunk


def test_train_help_names_every_resumable_key_and_reference_lists_choices(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(key in text for key in RESUMABLE_KEYS)
    assert main(["config", "--reference"]) == 0
    ref = capsys.readouterr().out
    assert "[one of: auto|off|fp16|bf16|on]" in ref and "[one of: error|skip]" in ref
    assert re.search(r"train\.epochs .*\[>= 1", ref)


def test_a_file_that_is_no_model_gets_a_whole_sentence(capsys):
    assert main(["evaluate", str(REPO / "README.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("or a run directory") and "is not a model file" in err


def test_download_fills_the_cache_and_fractions_are_slices_of_it(tmp_path, capsys):
    from cifake.config import DataConfig
    from cifake.data.cache import CACHE_DIRNAME
    from cifake.data.listing import load_split

    from .conftest import make_zip

    data = tmp_path / "data"
    assert (
        main(["download", "--archive", str(make_zip(tmp_path / "a.zip", per_class=30)), "--data-dir", str(data)]) == 0
    )
    cache = data / CACHE_DIRNAME
    made = sorted(f.name for f in cache.glob("*.npz"))
    assert len(made) == 2  # train and test, decoded once by the verification, kept at the final location
    capsys.readouterr()
    assert main(["cache", "--data-dir", str(data)]) == 0
    listed = capsys.readouterr().out
    assert "train (60 images)" in listed and "test (60 images)" in listed and "stale" not in listed

    whole = load_split(DataConfig(dir=str(data)), "train", progress=False)
    for fraction in (0.5, 0.25):
        part = load_split(DataConfig(dir=str(data), fraction=fraction), "train", progress=False)
        index = {p: i for i, p in enumerate(whole.paths)}
        assert len(part) == 2 * round(30 * fraction + 0.01)  # per class, rounded half up
        assert (part.images == whole.images[[index[p] for p in part.paths]]).all()
    assert sorted(f.name for f in cache.glob("*.npz")) == made  # no file per fraction

    (data / "train" / "REAL" / next(iter(sorted((data / "train" / "REAL").iterdir()))).name).unlink()
    assert main(["cache", "--data-dir", str(data)]) == 0
    assert "stale" in capsys.readouterr().out  # train's files changed: its cache no longer matches
    assert main(["cache", "--data-dir", str(data), "--clear"]) == 0
    assert not cache.exists()


def test_ctrl_c_while_loading_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    import cifake.data.listing

    data = make_dataset(tmp_path / "cifake", per_class=10)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cifake.data.listing, "load_splits", interrupted)
    args = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data}", "data.fraction=1.0"]
    assert main([*args, f"train.runs_dir={tmp_path / 'runs'}"]) == 130
    err = capsys.readouterr().err
    assert "interrupted while loading the data: nothing was written" in err
    assert not (tmp_path / "runs").exists()
