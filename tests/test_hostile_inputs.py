"""Hostile and careless input to the commands that score images: predict, evaluate, explain.

Bounded resources (pixel bombs are refused from the header), EXIF orientation, odd file names,
output paths checked before the work, and models or thresholds that would give meaningless scores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from cifake.cli import main
from cifake.data.images import load_images

from .conftest import png_bomb, synth_image


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(synth_image(rng, i % 2 == 1)).save(folder / f"img{i}.png")
    return folder


@pytest.mark.slow
def test_pixel_bomb_is_skipped_without_decoding(bomb, photos, tmp_path):
    """A 23000x23000 PNG once cost 2.3 GB and 14 s; now it is refused from its header."""
    (photos / "bomb.png").symlink_to(bomb)
    # VmHWM: this process's own peak since exec. ru_maxrss would also count the pytest parent's pages
    # at fork time, which grow with every test run before this one (1.5 GB in a full suite).
    script = (
        "import re, sys; from cifake.cli import main; code = main(sys.argv[1:]); "
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
        "print('MAXRSS', hwm, file=sys.stderr); sys.exit(code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "predict", str(photos)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 3, proc.stderr  # some files unreadable, the rest scored
    assert "529 megapixels is over the 50 MP cap" in proc.stderr
    assert proc.stdout.count(".png") == 3  # the three real images were scored
    maxrss_mb = int(proc.stderr.split("MAXRSS")[1].split()[0]) / 1024
    assert maxrss_mb < 1500, f"peak memory {maxrss_mb:.0f} MB: the bomb was decoded"


def test_pixel_cap_option_and_loader(tmp_path, capfd):
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((1200, 1000, 3), np.uint8)).save(big)  # 1.2 MP
    assert main(["predict", str(big), "--max-megapixels", "1"]) == 2
    assert "1000x1200 = 1.2 megapixels is over the 1 MP cap" in capfd.readouterr().err
    assert main(["predict", str(big), "--max-megapixels", "2"]) == 0
    from cifake.base import limits
    from cifake.data.decode import decode_files

    limits.set_max_megapixels(1)
    try:
        _, bad = decode_files([str(big)])
        assert bad == [0]  # the training loader honours the same cap
    finally:
        limits.set_max_megapixels(limits.DEFAULT_MAX_MEGAPIXELS)


def test_jpeg_header_over_the_cap_is_refused_in_the_loader(tmp_path):
    from cifake.base import limits
    from cifake.data.decode import decode_files

    f = tmp_path / "wide.jpg"
    Image.fromarray(np.zeros((600, 2000, 3), np.uint8)).save(f)  # 1.2 MP JPEG
    limits.set_max_megapixels(1)
    try:
        assert decode_files([str(f)])[1] == [0]
    finally:
        limits.set_max_megapixels(limits.DEFAULT_MAX_MEGAPIXELS)
    assert decode_files([str(f)])[1] == []


def test_exif_orientation_is_applied(tmp_path):
    """A phone photo stored sideways with an EXIF 'rotate' tag is scored upright."""
    upright = np.zeros((32, 32, 3), np.uint8)
    upright[:8] = 255  # a white band at the top: rotation moves it to a side
    stored = np.rot90(upright, k=1)  # what a camera writes before tagging Orientation=6 (rotate 90 CW)
    exif = Image.Exif()
    exif[0x0112] = 6
    f = tmp_path / "phone.jpg"
    Image.fromarray(np.ascontiguousarray(stored)).save(f, exif=exif, quality=95)
    images, ok, bad, sizes = load_images([str(f)])
    assert sizes == [(32, 32)]
    assert ok == [str(f)] and not bad
    assert np.abs(images[0].astype(int) - upright).mean() < 10
    assert np.abs(images[0].astype(int) - stored).mean() > 50


def test_non_utf8_names_are_scored_and_printed(photos, tmp_path, capfd):
    odd = os.path.join(os.fsencode(photos), b"caf\xe9.png")
    os.rename(photos / "img0.png", odd)
    assert main(["predict", str(photos)]) == 0
    assert "caf\\xe9.png" in capfd.readouterr().out
    out = tmp_path / "p.csv"
    assert main(["predict", str(photos), "--out", str(out)]) == 0
    assert "caf\\xe9.png" in out.read_text(encoding="utf-8")


def test_truncated_jpeg_noise_stays_off_the_terminal(photos, capfd):
    good = photos / "x.jpg"
    Image.fromarray(np.full((32, 32, 3), 99, np.uint8)).save(good)
    (photos / "cut.jpg").write_bytes(good.read_bytes()[:300])
    main(["predict", str(photos)])
    err = capfd.readouterr().err
    assert "Premature end" not in err and "Corrupt JPEG" not in err


@pytest.mark.parametrize("kind", ["folder", "under-a-file"])
def test_out_checked_before_scoring(photos, tmp_path, capfd, kind):
    if kind == "folder":
        out = tmp_path / "outdir"
        out.mkdir()
    else:
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "p.csv"
    assert main(["predict", str(photos), "--out", str(out)]) == 2
    captured = capfd.readouterr()
    assert "--out" in captured.err and "scored" not in captured.err


def _save(model, path: Path) -> Path:
    model.save(path)
    return path


def _tiny_model(activation: str | None, bias: float = 0.0):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    out = keras.layers.Dense(
        1, activation=activation, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(bias)
    )(x)
    return keras.Model(inputs, out)


def test_model_output_not_a_probability_is_refused(photos, tmp_path, capfd):
    path = _save(_tiny_model(None, bias=33.88), tmp_path / "logits.keras")
    assert main(["predict", str(photos), "--model", str(path)]) == 2
    err = capfd.readouterr().err
    assert "not a probability" in err and "33.88" in err


def test_model_with_nan_weights_is_refused(photos, tmp_path, capfd):
    model = _tiny_model("sigmoid")
    w = model.get_weights()
    w[0][:] = np.nan
    model.set_weights(w)
    path = _save(model, tmp_path / "nan.keras")
    assert main(["predict", str(photos), "--model", str(path)]) == 2
    assert "NaN or infinite weights" in capfd.readouterr().err


def test_random_bytes_keras_file(photos, tmp_path, capfd):
    path = tmp_path / "model.keras"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    assert main(["predict", str(photos), "--model", str(path)]) == 2
    err = capfd.readouterr().err
    assert "not a .keras model file" in err and "not found" not in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"threshold": 7}', "between 0 and 1"),
        ('{"threshold": NaN}', "between 0 and 1"),
        ('{"chosen_on": "val"}', "between 0 and 1"),
        ("{not json", "not valid JSON"),
        ("[0.5]", "between 0 and 1"),
    ],
)
def test_bad_threshold_json_is_a_user_error(photos, tmp_path, capfd, content, expected):
    folder = tmp_path / "m"
    folder.mkdir()
    path = _save(_tiny_model("sigmoid"), folder / "best.keras")
    (folder / "threshold.json").write_text(content)
    assert main(["predict", str(photos), "--model", str(path)]) == 2
    err = capfd.readouterr().err
    assert expected in err and "threshold.json" in err and "Traceback" not in err


def test_evaluate_out_that_is_a_file_fails_first(tmp_path, capfd):
    folder = tmp_path / "m"
    folder.mkdir()
    path = _save(_tiny_model("sigmoid"), folder / "best.keras")
    (tmp_path / "file").write_text("x")
    assert main(["evaluate", str(path), "--out", str(tmp_path / "file"), "--data-dir", str(tmp_path / "none")]) == 2
    assert "is a file" in capfd.readouterr().err


def test_threshold_json_written_by_choose_threshold_is_valid(tmp_path):
    from cifake.models.detector import read_threshold

    (tmp_path / "threshold.json").write_text(json.dumps({"threshold": 0.42, "chosen_on": "val"}))
    assert read_threshold(tmp_path / "best.keras")[0] == pytest.approx(0.42)


def test_evaluation_figures_with_non_utf8_names(tmp_path):
    """Matplotlib cannot draw lone surrogates: the mistakes figure once crashed on such a name."""
    from cifake.data.listing import Split
    from cifake.models.plots import evaluation_figures

    rng = np.random.default_rng(0)
    n = 40
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.repeat([0, 1], n // 2).astype(np.int32)
    paths = [os.fsdecode(b"/d/train/REAL/caf\xe9%d.jpg" % i) for i in range(n)]
    p = rng.random(n).astype(np.float32)  # plenty of mistakes to show
    figures = evaluation_figures(labels, p, Split(images, labels, paths), 0.5, tmp_path)
    assert figures and all(Path(f).stat().st_size > 1000 for f in figures)
