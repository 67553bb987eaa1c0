"""Damaged run files, special files, odd images and hostile nesting: one line, the right exit code, nothing lost."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifake.cli import main

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("cifake ")]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """(data dir, a finished 2-epoch run) of the smoke recipe on generated data."""
    root = tmp_path_factory.mktemp("damaged")
    data = make_dataset(root / "cifake", per_class=40)
    args = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data}", "train.tensorboard=false"]
    args += [f"train.runs_dir={root / 'runs'}", "data.fraction=1.0", "train.epochs=2", "train.batch_size=16"]
    assert main([*args, "--name", "r"]) == 0
    return data, root / "runs" / "r"


def _unfinished_copy(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the run that looks interrupted after its 2 epochs (no metrics.json), to resume with more epochs."""
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "metrics.json").unlink()
    return copy


def _resume(copy: Path) -> int:
    return main(["train", "--resume", str(copy), "train.epochs=3"])


# --- resume verifies that the run's files agree ---------------------------------------------------


def test_an_emptied_results_csv_is_refused_on_resume(run, tmp_path, capsys):
    copy = _unfinished_copy(run[1], tmp_path)
    (copy / "results.csv").write_text("")
    assert _resume(copy) == 2
    assert "holds 0 row(s)" in _one_error_line(capsys)
    assert not (copy / "metrics.json").exists()


def test_a_damaged_results_csv_is_one_line_on_resume_and_in_runs_compare(run, tmp_path, capsys):
    copy = _unfinished_copy(run[1], tmp_path)
    (copy / "results.csv").write_text("epoch,loss\n1,abc\n")
    assert _resume(copy) == 2
    assert "results.csv is damaged" in _one_error_line(capsys)
    assert main(["runs", str(tmp_path), "--compare", str(copy), "--out", str(tmp_path / "c.png")]) == 2
    assert "results.csv is damaged" in _one_error_line(capsys)


def test_an_edited_config_that_no_longer_matches_last_keras_is_refused(run, tmp_path, capsys):
    copy = _unfinished_copy(run[1], tmp_path)
    text = (copy / "config.yaml").read_text()
    assert "filters: [16, 32]" in text
    (copy / "config.yaml").write_text(text.replace("filters: [16, 32]", "filters: [8, 32]"))
    assert _resume(copy) == 2
    assert "holds another model than" in _one_error_line(capsys)


@pytest.mark.parametrize("damage", ["folder", "garbage", "missing"])
def test_last_keras_damaged_folder_or_missing(run, tmp_path, damage, capsys):
    copy = _unfinished_copy(run[1], tmp_path)
    last = copy / "last.keras"
    last.unlink()
    if damage == "folder":
        last.mkdir()
        assert _resume(copy) == 2
        assert "is not a file" in _one_error_line(capsys)
    elif damage == "garbage":
        last.write_bytes(b"PK\x03\x04 not really a zip" * 10)
        assert _resume(copy) == 2
        line = _one_error_line(capsys)
        assert "last.keras" in line and "not found" not in line.lower()
    else:
        (copy / "results.csv").write_text("")
        assert _resume(copy) == 0  # nothing finished: it says so and trains from epoch 1
        assert "no last.keras" in capsys.readouterr().out
        assert (copy / "metrics.json").is_file()


def test_runs_lists_a_damaged_run_as_damaged_and_the_others(run, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(run[1], runs / "good")
    shutil.copytree(run[1], runs / "bad")
    (runs / "bad" / "config.yaml").write_text("model: [unclosed\n")
    assert main(["runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "finished" in out
    assert "damaged" in next(line for line in out.splitlines() if line.startswith("bad"))


# --- special files and odd images ------------------------------------------------------------------


def test_special_files_with_image_names_are_reported_and_exit_3(run, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(folder / "ok.png")
    (folder / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    os.mkfifo(folder / "pipe.png")
    (folder / "zero.jpg").symlink_to("/dev/zero")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.png"))
    try:
        assert main(["predict", str(folder), "--model", str(run[1])]) == 3
        err = capsys.readouterr().err
        assert "dangling.jpg: a broken symbolic link" in err
        assert "pipe.png: a named pipe (FIFO)" in err
        assert "zero.jpg: a device, not a file" in err
        assert "sock.png: a socket" in err
        assert "1 scored" in err and "4 unreadable" in err
        assert main(["predict", str(folder / "pipe.png"), str(folder / "ok.png"), "--model", str(run[1])]) == 3
        assert "pipe.png: a named pipe" in capsys.readouterr().err
        assert main(["predict", str(folder / "pipe.png"), "--model", str(run[1])]) == 2  # nothing left to score
    finally:
        sock.close()


def test_float_and_32_bit_tiffs_are_refused_and_16_bit_is_scaled(run, tmp_path, capsys):
    folder = tmp_path / "tiffs"
    folder.mkdir()
    Image.fromarray(np.full((32, 32), 0.5, np.float32)).save(folder / "float.tif")  # mode F
    Image.fromarray(np.full((32, 32), 70_000, np.int32)).save(folder / "int.tif")  # mode I
    Image.fromarray(np.full((32, 32), 32_896, np.uint16)).save(folder / "sixteen.tif")  # mode I;16
    out = tmp_path / "p.csv"
    assert main(["predict", str(folder), "--model", str(run[1]), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "float.tif: a 32-bit floating-point image (mode F)" in err
    assert "int.tif: a 32-bit integer image (mode I)" in err
    assert "sixteen.tif" in out.read_text()
    from cifake.data.decode import pil_decode

    assert np.array_equal(pil_decode(str(folder / "sixteen.tif")), np.full((32, 32, 3), 128, np.uint8))


# --- nesting, long names, outputs onto files, encodings -------------------------------------------


def test_a_folder_tree_1500_levels_deep_is_walked(run, tmp_path, capsys):
    deep = leaf = tmp_path / "deep"
    deep.mkdir()
    for _ in range(1500):  # one level at a time: pathlib's mkdir(parents=True) itself recurses
        leaf = leaf / "d"
        leaf.mkdir()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(leaf / "x.png")
    try:
        assert main(["predict", str(deep), "--model", str(run[1])]) == 0
        assert "1 scored" in capsys.readouterr().err
    finally:  # bottom up, without recursion: shutil.rmtree (and pytest's clean-up) would recurse 1,500 deep
        (leaf / "x.png").unlink()
        while leaf != tmp_path:
            leaf.rmdir()
            leaf = leaf.parent


def test_nested_json_in_threshold_file_and_tf_config_is_one_line(run, tmp_path, capsys, monkeypatch):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    shutil.copy(run[1] / "best.keras", model_dir / "best.keras")
    (model_dir / "threshold.json").write_text("[" * 30_000 + "]" * 30_000)
    image = tmp_path / "x.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(image)
    assert main(["predict", str(image), "--model", str(model_dir / "best.keras")]) == 2
    assert "threshold.json is nested too deeply" in _one_error_line(capsys)
    monkeypatch.setenv("TF_CONFIG", "[" * 30_000 + "]" * 30_000)
    assert main(["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={run[0]}"]) == 2
    assert "TF_CONFIG is nested too deeply" in _one_error_line(capsys)


def test_a_name_over_255_bytes_is_one_short_line(run, tmp_path, capsys):
    long = tmp_path / ("x" * 300 + ".png")
    assert main(["predict", str(long), "--model", str(run[1])]) == 2
    line = _one_error_line(capsys)
    assert "too long" in line and len(line) < 300


@pytest.mark.parametrize("command", ["explain", "eda"])
def test_explain_and_eda_refuse_an_out_that_is_a_file(run, tmp_path, command, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    image = tmp_path / "x.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(image)
    argv = (
        ["explain", str(run[1]), str(image), "--out", str(target)]
        if command == "explain"
        else ["eda", "--data-dir", str(run[0]), "--out", str(target)]
    )
    assert main(argv) == 2
    assert "is a file" in _one_error_line(capsys)
    assert target.read_text() == "keep me"


def test_an_ascii_only_terminal_gets_escaped_names_not_a_crash(run, tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(folder / "café-ü.png")
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    proc = subprocess.run(
        [sys.executable, "-m", "cifake", "predict", str(folder), "--model", str(run[1])],
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-500:]
    assert b"caf\\xe9-\\xfc.png" in proc.stdout


# --- signals and full disks ------------------------------------------------------------------------

_SIGNAL_CHILD = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell without job control starts a background job
import cifake.commands.config as command
from cifake.cli import main

def run(args):
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    time.sleep(30)
    return 0

command.run = run
sys.exit(main(["config"]))
"""


@pytest.mark.parametrize(("sig", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_sigint_even_when_ignored_and_sigterm_stop_a_command(sig, code):
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_CHILD, sig], capture_output=True, text=True, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert ("terminated" if sig == "SIGTERM" else "interrupted") in proc.stderr


def test_the_cli_restores_the_callers_signal_handlers():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert main(["config"]) == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_full_disk_is_one_line_and_leaves_no_temporary_checkpoint(run, tmp_path, monkeypatch, capsys):
    import errno

    import keras

    from cifake.base import files

    model = keras.models.load_model(run[1] / "best.keras")

    def full(self, path, *a, **k):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(keras.Model, "save", full)
    with pytest.raises(OSError):
        files.atomic_save(model, tmp_path / "best.keras")
    assert list(tmp_path.iterdir()) == []

    import cifake.commands.config as command

    monkeypatch.setattr(command, "run", lambda args: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space", "/x")))
    assert main(["config"]) == 2
    assert "no space left on the device (/x)" in _one_error_line(capsys)


def test_saving_a_checkpoint_checks_the_free_space_first(run, tmp_path, monkeypatch):
    import collections

    import keras

    from cifake.base import files
    from cifake.base.errors import UserError

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9, 1000))
    with pytest.raises(UserError, match=r"saving best\.keras needs \d+ MiB but .* has 0 MiB free"):
        files.atomic_save(keras.models.load_model(run[1] / "best.keras"), tmp_path / "best.keras")
    assert list(tmp_path.iterdir()) == []


def test_a_tiny_fraction_names_the_folders_real_size(run, tmp_path, capsys):
    argv = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={run[0]}", "data.fraction=1e-300"]
    assert main([*argv, f"train.runs_dir={tmp_path / 'runs'}"]) == 2
    line = _one_error_line(capsys)
    assert "of the 80 images in" in line and "data.fraction=1e-300 keeps" in line
    assert not (tmp_path / "runs").exists()


def test_outputs_that_would_become_inputs_are_refused(run, tmp_path, capsys):
    """explain's figure onto an image it explains; eda's report or a run inside the dataset's image folders."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(folder / "cat.png")
    Image.fromarray(np.full((32, 32, 3), 40, np.uint8)).save(folder / "cat_gradcam.png")
    before = (folder / "cat_gradcam.png").read_bytes()
    assert main(["explain", str(run[1]), str(folder), "--out", str(folder)]) == 2
    assert "would replace one of the images being explained" in _one_error_line(capsys)
    assert (folder / "cat_gradcam.png").read_bytes() == before
    data = run[0]
    assert main(["eda", "--data-dir", str(data), "--out", str(data / "train" / "REAL" / "report")]) == 2
    assert "inside the dataset's image folders" in _one_error_line(capsys)
    argv = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data}"]
    assert main([*argv, f"train.runs_dir={data / 'train' / 'FAKE'}"]) == 2
    assert "inside the dataset's image folders" in _one_error_line(capsys)
    assert not (data / "train" / "FAKE" / "smoke").exists()


def test_evaluate_refuses_to_merge_into_a_damaged_metrics_json(run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run[1], copy)
    (copy / "metrics.json").write_text("[1, 2")
    assert main(["evaluate", str(copy), "--split", "val", "--data-dir", str(run[0]), "--no-plots"]) == 2
    assert "metrics.json is damaged" in _one_error_line(capsys)
    assert (copy / "metrics.json").read_text() == "[1, 2"
