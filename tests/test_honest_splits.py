"""Honest splits: byte-identical files stay on one side, no validation or test image reaches training
through extra folders, a run refuses to resume on another split, outputs never replace what cifake did
not write, per-source evaluation counts what it skipped, and the bounds of the Python API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifake.base.errors import UserError
from cifake.cli import main
from cifake.config import DataConfig, load_config
from cifake.data.dedup import duplicate_groups, file_hashes, fingerprint
from cifake.data.listing import list_split, load_splits, stratified_split

from .conftest import REAL_ZIP, make_dataset, synth_image

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "smoke.yaml")


def _with_twins(root: Path, n: int = 12) -> Path:
    """A dataset whose train/FAKE holds ``n`` byte-identical copies of other train/FAKE files."""
    data = make_dataset(root, per_class=60)
    fakes = sorted((data / "train" / "FAKE").iterdir())
    for i, f in enumerate(fakes[:n]):
        shutil.copyfile(f, f.with_name(f"twin{i:02d}.jpg"))
    return data


@pytest.fixture(scope="module")
def twins_data(tmp_path_factory) -> Path:
    return _with_twins(tmp_path_factory.mktemp("twins") / "cifake")


@pytest.fixture(scope="module")
def run(tmp_path_factory, twins_data) -> Path:
    """A finished smoke run on ``twins_data`` (0.3 validation share) with a test split beside it."""
    runs = tmp_path_factory.mktemp("runs")
    argv = ["train", "--config", SMOKE, f"data.dir={twins_data}", f"train.runs_dir={runs}", "data.fraction=1.0"]
    assert main([*argv, "data.val_fraction=0.3", "train.epochs=1", "train.batch_size=16", "--name", "r"]) == 0
    return runs / "r"


# --- 1. splits that cannot leak ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 42, 2**32 - 1])
def test_byte_identical_files_land_on_one_side_of_every_split(twins_data, seed):
    cfg = DataConfig(dir=str(twins_data), val_fraction=0.3, split_seed=seed)
    splits = load_splits(cfg, progress=False)
    train, val = splits["train"], splits["val"]
    assert not set(train.hashes.tolist()) & set(val.hashes.tolist())  # no content on both sides
    assert len(train) + len(val) == 132
    # files without a twin fall exactly where the plain split puts them
    paths, labels = list_split(twins_data, "train")
    plain_val = {paths[i] for i in stratified_split(labels, 0.3, seed)[1]}
    hashes = file_hashes(paths)
    single = {p for p, h in zip(paths, hashes, strict=True) if (hashes == h).sum() == 1}
    assert {p for p in val.paths if p in single} == plain_val & single


def test_the_plain_split_would_have_leaked_here(twins_data):
    """The grouping matters on this data: without it some twin pairs straddle the split."""
    paths, labels = list_split(twins_data, "train")
    hashes = file_hashes(paths)
    straddling = 0
    for seed in range(10):
        tr, va = stratified_split(labels, 0.3, seed)
        straddling += len(set(hashes[tr].tolist()) & set(hashes[va].tolist()))
    assert straddling > 0


def test_data_json_counts_groups_and_holds_the_fingerprint(run):
    info = json.loads((run / "data.json").read_text())
    assert info["duplicate_groups"] == 12 and info["duplicate_files"] == 12
    assert info["groups"] == 132 - 12 and info["train_images"] + info["val_images"] == 132
    assert len(info["split_fingerprint"]) == 16


def test_fingerprint_changes_with_the_split_not_with_order():
    h = np.arange(10, dtype=np.uint64)
    y = np.array([0, 1] * 5, np.int32)
    a = fingerprint(h[:7], y[:7], h[7:], y[7:])
    assert a == fingerprint(h[:7][::-1], y[:7][::-1], h[7:], y[7:])
    assert a != fingerprint(h[1:8], y[1:8], np.r_[h[:1], h[8:]], np.r_[y[:1], y[8:]])
    assert a != fingerprint(h[:7], 1 - y[:7], h[7:], y[7:])  # the same files with other labels
    assert duplicate_groups(np.array([1, 1, 2, 3, 3, 3], np.uint64)) == {
        "groups": 3,
        "duplicate_groups": 2,
        "duplicate_files": 3,
    }


def test_evaluate_counts_test_images_with_a_twin_in_training_and_reports_figures_without_them(
    run, twins_data, tmp_path, capsys
):
    data = tmp_path / "withtest"
    shutil.copytree(twins_data / "train", data / "train")
    make_dataset(tmp_path / "t", per_class=30, splits=("test",), seed=5)
    shutil.copytree(tmp_path / "t" / "test", data / "test")
    train_fakes = sorted((data / "train" / "FAKE").glob("00*.jpg"))
    for i, f in enumerate(train_fakes[:7]):  # seven test FAKE files are byte copies of train ones
        shutil.copyfile(f, data / "test" / "FAKE" / f"copy{i}.jpg")
    out = tmp_path / "ev"
    assert (
        main(["evaluate", str(run / "best.keras"), "--split", "test", "--data-dir", str(data), "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "7 image(s) are byte-identical to one of" in printed and "without them (60 images)" in printed
    twins = json.loads((out / "metrics.json").read_text())["evaluate"]["test"]["twins"]
    assert twins["images"] == 7 and twins["without"]["images"] == 60 and twins["in_training"] <= 7


def test_evaluate_on_validation_finds_no_twin_in_training(run, capsys):
    assert main(["evaluate", str(run), "--split", "val", "--no-plots"]) == 0
    assert "byte-identical twins in training: none" in capsys.readouterr().out


def test_download_verify_reports_duplicates_within_and_across_splits(tmp_path, capsys):
    data = make_dataset(tmp_path / "d", per_class=20, splits=("train", "test"))
    f = sorted((data / "train" / "FAKE").iterdir())[0]
    shutil.copyfile(f, data / "train" / "FAKE" / "dup.jpg")
    shutil.copyfile(f, data / "test" / "FAKE" / "dup.jpg")
    main(["download", "--data-dir", str(data), "--verify"])
    printed = capsys.readouterr().out
    assert "train: 1 group(s) of byte-identical files" in printed
    assert "test: 1 file(s) byte-identical to a train file" in printed


# --- 2. extra folders that cannot poison ---------------------------------------------------------


@pytest.fixture(scope="module")
def poison(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("poison")
    data = make_dataset(root / "data", per_class=30, splits=("train", "test"))
    fakes = root / "fakes"
    (fakes / "train" / "FAKE" / "gan").mkdir(parents=True)
    (fakes / "val" / "REAL").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(6):
        Image.fromarray(synth_image(rng, True)).save(fakes / "train" / "FAKE" / "gan" / f"{i}.png")
    (fakes / "fakes.json").write_text(json.dumps({"generators": {}}))
    return data, fakes


def _train_refused(data: Path, tmp_path: Path, capfd, *overrides: str) -> str:
    runs = tmp_path / "runs"
    argv = ["train", "--config", SMOKE, f"data.dir={data}", f"train.runs_dir={runs}", "data.fraction=1.0"]
    assert main([*argv, "data.val_fraction=0.25", "train.epochs=1", *overrides]) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not runs.exists(), err  # one line, nothing written
    return err


@pytest.mark.parametrize(
    "override",
    [
        "data.extra_fake=[{data}/train/REAL]",
        "data.extra_fake=[{data}/train/FAKE]",
        "data.extra_real=[{data}/test/REAL]",
        "data.extra_fake=[{data}/train]",
        "data.extra_fake=[{data}]",
        "data.extra_real=[{fakes}/val/REAL]",
        "data.extra_fake=[{fakes}]",
        "data.extra_fake=[{fakes}/val]",
    ],
)
def test_extra_folders_in_or_around_held_out_images_are_refused(poison, tmp_path, capfd, override):
    data, fakes = poison
    err = _train_refused(data, tmp_path, capfd, override.format(data=data, fakes=fakes))
    assert "is, holds or lies inside" in err


def test_extra_folder_through_a_symlink_is_refused(poison, tmp_path, capfd):
    data, _ = poison
    (tmp_path / "link").symlink_to(data / "train" / "REAL")
    assert "is, holds or lies inside" in _train_refused(data, tmp_path, capfd, f"data.extra_fake=[{tmp_path / 'link'}]")


def test_the_same_extra_folder_twice_is_refused(poison, tmp_path, capfd):
    data, fakes = poison
    gan = fakes / "train" / "FAKE" / "gan"
    err = _train_refused(data, tmp_path, capfd, f"data.extra_fake=[{gan},{gan.parent}]")
    assert "each extra folder may be given once" in err
    err = _train_refused(data, tmp_path, capfd, f"data.extra_fake=[{gan}]", f"data.extra_real=[{gan}]")
    assert "each extra folder may be given once" in err


@pytest.mark.parametrize("how", ["bytes", "png"])
def test_extra_images_equal_to_validation_or_test_images_are_refused(poison, tmp_path, capfd, how):
    data, _ = poison
    val = load_splits(DataConfig(dir=str(data), val_fraction=0.25), progress=False)["val"]
    extra = tmp_path / "mine"
    extra.mkdir()
    rng = np.random.default_rng(9)
    for i in range(5):
        Image.fromarray(synth_image(rng, True)).save(extra / f"new{i}.png")
    for src in (val.paths[0], sorted((data / "test" / "REAL").iterdir())[3]):
        if how == "bytes":
            shutil.copyfile(src, extra / Path(src).name)
        else:  # saved again losslessly: other bytes, the same pixels
            Image.open(src).convert("RGB").save(extra / (Path(src).stem + ".png"))
    err = _train_refused(data, tmp_path, capfd, f"data.extra_real=[{extra}]")
    assert "2 image(s) under" in err and "content of a validation or test image" in err


def test_clean_extra_folder_is_still_accepted(poison):
    data, fakes = poison
    cfg = load_config(None, [f"data.dir={data}", "data.val_fraction=0.25", f"data.extra_fake=[{fakes}/train/FAKE]"])
    splits = load_splits(cfg.data, progress=False)
    assert int((splits["train"].labels == 1).sum()) == 22 + 6


def test_fakes_onto_the_dataset_is_refused(poison, capfd):
    data, _ = poison
    for out in (data, data / "train", data.parent):
        assert main(["fakes", "--data-dir", str(data), "--out", str(out), "--val-fraction", "0.25"]) == 2
        assert "is, holds or lies inside the dataset" in capfd.readouterr().err
    assert not (data / "val").exists() and not (data / "fakes.json").exists()


# --- 3. resume refuses a changed split -----------------------------------------------------------


@pytest.mark.slow
def test_resume_refuses_a_split_seed_edited_in_config_yaml(twins_data, tmp_path, capfd):
    runs = tmp_path / "runs"
    argv = ["train", "--config", SMOKE, f"data.dir={twins_data}", f"train.runs_dir={runs}", "data.fraction=1.0"]
    assert main([*argv, "train.epochs=1", "train.batch_size=16", "--name", "r"]) == 0
    run = runs / "r"
    (run / "metrics.json").unlink()  # as if killed before the end
    text = (run / "config.yaml").read_text()
    assert "split_seed: 42" in text
    (run / "config.yaml").write_text(text.replace("split_seed: 42", "split_seed: 43"))
    assert main(["train", "--resume", str(run), "train.epochs=2"]) == 2
    assert "another split" in capfd.readouterr().err
    (run / "config.yaml").write_text(text)  # the same split resumes
    assert main(["train", "--resume", str(run), "train.epochs=2"]) == 0


def test_resume_of_a_run_without_a_fingerprint_is_refused(tmp_path):
    from cifake.training.rundir import check_same_data

    (tmp_path / "data.json").write_text(json.dumps({"train_images": 9, "val_images": 1, "steps_per_epoch": 1}))
    now = {"train_images": 9, "val_images": 1, "steps_per_epoch": 1, "split_fingerprint": "x"}
    with pytest.raises(UserError, match="older cifake"):
        check_same_data(tmp_path, now)


# --- 4. no output replaces a file cifake did not write -------------------------------------------


@pytest.mark.parametrize("name", ["best.keras", "photo.png", "notes.txt", "empty.csv"])
def test_predict_out_never_replaces_a_file_it_did_not_write(tmp_path, capfd, name):
    img = tmp_path / "in.png"
    Image.fromarray(synth_image(np.random.default_rng(0), True)).save(img)
    target = tmp_path / name
    target.write_bytes(b"" if name == "empty.csv" else b"something of the user's\n")
    before = target.read_bytes()
    assert main(["predict", str(img), "--out", str(target)]) == 2
    assert "not a predictions CSV that cifake wrote" in capfd.readouterr().err
    assert target.read_bytes() == before


def test_predict_out_replaces_its_own_csv(tmp_path):
    img = tmp_path / "in.png"
    Image.fromarray(synth_image(np.random.default_rng(0), True)).save(img)
    out = tmp_path / "p.csv"
    assert main(["predict", str(img), "--out", str(out)]) == 0
    assert main(["predict", str(img), str(img), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3


def test_evaluate_out_inside_the_data_is_refused(run, twins_data, capfd):
    out = twins_data / "train" / "REAL" / "ev"
    assert main(["evaluate", str(run), "--split", "val", "--out", str(out)]) == 2
    assert "inside the image folders" in capfd.readouterr().err and not out.exists()


@pytest.fixture
def small(tmp_path) -> Path:
    return make_dataset(tmp_path / "data", per_class=40)


def _fakes(data: Path, out: Path, *extra: str) -> int:
    tiny = ["--val-fraction", "0.25", "--epochs", "1", "--fit-images", "24", "--train-images", "4"]
    return main(["fakes", "--data-dir", str(data), "--out", str(out), *tiny, "--eval-images", "4", *extra])


def test_fakes_never_deletes_a_val_real_folder_it_did_not_write(small, tmp_path, capfd):
    out = tmp_path / "mine"
    (out / "val" / "REAL").mkdir(parents=True)
    (out / "val" / "REAL" / "holiday.jpg").write_bytes(b"user photo")
    (out / "val" / "REAL" / "notes.txt").write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(out)
    for target in (out, link):
        assert _fakes(small, target, "--generators", "autoencoder") == 2
        assert "not written by cifake fakes" in capfd.readouterr().err
    assert sorted(p.name for p in (out / "val" / "REAL").iterdir()) == ["holiday.jpg", "notes.txt"]


@pytest.mark.slow
def test_fakes_rerun_with_another_seed_keeps_or_refuses_never_swaps(small, tmp_path, capfd):
    out = tmp_path / "fk"
    assert _fakes(small, out, "--generators", "autoencoder") == 0
    first = sorted(p.name for p in (out / "val" / "REAL").iterdir())
    assert _fakes(small, out, "--generators", "autoencoder", "--force") == 0  # same settings: kept
    assert sorted(p.name for p in (out / "val" / "REAL").iterdir()) == first
    assert _fakes(small, out, "--generators", "autoencoder", "--seed", "5") == 2  # its fakes are there
    assert "already holds images" in capfd.readouterr().err
    assert _fakes(small, out, "--generators", "vae", "--seed", "5") == 2  # new fakes, other validation copies
    assert "validation copies of other settings" in capfd.readouterr().err
    assert sorted(p.name for p in (out / "val" / "REAL").iterdir()) == first
    (out / "val" / "REAL" / "mine.txt").write_text("a note")
    assert _fakes(small, out, "--generators", "autoencoder", "--seed", "5", "--force") == 2
    assert "did not write" in capfd.readouterr().err
    (out / "val" / "REAL" / "mine.txt").unlink()
    assert _fakes(small, out, "--generators", "vae", "--seed", "5", "--force") == 2  # autoencoder's would be stale
    assert "also holds fakes of autoencoder" in capfd.readouterr().err
    assert _fakes(small, out, "--generators", "autoencoder", "--seed", "5", "--force") == 0
    assert json.loads((out / "fakes.json").read_text())["seed"] == 5


@pytest.mark.parametrize("damage", ["not json {", "[1, 2]", '{"generators": [1]}'])
def test_fakes_with_a_damaged_manifest_is_one_line_exit_2(small, tmp_path, capfd, damage):
    out = tmp_path / "fk"
    out.mkdir()
    (out / "fakes.json").write_text(damage)
    assert _fakes(small, out, "--generators", "autoencoder") == 2
    err = capfd.readouterr().err.strip()
    assert "is damaged" in err and len(err.splitlines()) == 1


def test_fakes_with_val_real_a_symlink_is_one_line_exit_2(small, tmp_path, capfd):
    out = tmp_path / "fk"
    (out / "val").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (out / "val" / "REAL").symlink_to(tmp_path / "elsewhere")
    assert _fakes(small, out, "--generators", "autoencoder") == 2
    assert "is a link or a file" in capfd.readouterr().err


def test_fakes_image_counts_are_bounded_before_any_work(small, tmp_path, capfd):
    assert _fakes(small, tmp_path / "fk", "--train-images", "100000000") == 2
    assert "100,000" in capfd.readouterr().err and not (tmp_path / "fk").exists()


def test_fakes_skips_an_empty_first_jpeg_for_the_tables(small, tmp_path):
    from cifake.tasks.fakes import jpeg_settings

    first = sorted((small / "train" / "REAL").iterdir())[0]
    first.write_bytes(b"")
    _, _, source = jpeg_settings(small)
    assert source != str(first)


# --- 5, 6. per-source evaluation that never lies quietly -----------------------------------------


def _sources(root: Path, fake_names: list[str], bad: dict[str, int] | None = None) -> Path:
    rng = np.random.default_rng(2)
    for name, fake in [("REAL", False), *((f"FAKE/{n}", True) for n in fake_names)]:
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(12):
            Image.fromarray(synth_image(rng, fake)).save(folder / f"{i}.png")
        for i in range((bad or {}).get(name, 0)):
            (folder / f"broken{i}.png").write_bytes(b"\x89PNG not really")
    return root


def test_a_source_named_real_or_fake_is_a_source_of_fakes(run, tmp_path, capsys):
    d = _sources(tmp_path / "s", ["REAL", "FAKE", "gan"])
    out = tmp_path / "ev"
    assert main(["evaluate", str(run), "--data-dir", str(d), "--out", str(out), "--no-plots"]) == 0
    rows = json.loads((out / "metrics.json").read_text())["evaluate"]["sources"]["per_source"]
    assert set(rows) == {"REAL", "FAKE", "gan"} and all(r["images"] == 12 for r in rows.values())
    report = json.loads((out / "metrics.json").read_text())["evaluate"]["sources"]
    assert report["confusion"]["tp"] + report["confusion"]["fn"] == 36  # all three folders count as FAKE


def test_undecodable_source_files_are_counted_and_exit_3(run, tmp_path, capsys):
    d = _sources(tmp_path / "s", ["gan"], bad={"FAKE/gan": 2, "REAL": 1})
    out = tmp_path / "ev"
    assert main(["evaluate", str(run), "--data-dir", str(d), "--out", str(out), "--no-plots"]) == 3
    err = capsys.readouterr().err
    assert "skipped 2 file(s) of gan" in err and "skipped 1 file(s) of REAL" in err
    skipped = json.loads((out / "metrics.json").read_text())["evaluate"]["sources"]["skipped"]
    assert skipped["gan"]["files"] == 2


def test_a_source_of_only_undecodable_files_is_refused(run, tmp_path, capfd):
    d = _sources(tmp_path / "s", ["gan"])
    (d / "FAKE" / "dead").mkdir()
    for i in range(3):
        (d / "FAKE" / "dead" / f"{i}.png").write_bytes(b"nope")
    assert main(["evaluate", str(run), "--data-dir", str(d), "--out", str(tmp_path / "ev"), "--no-plots"]) == 2
    assert "none of the 3 file(s)" in capfd.readouterr().err


def test_metrics_json_is_strict_json(run, tmp_path):
    d = _sources(tmp_path / "s", ["gan"])
    out = tmp_path / "ev"
    assert main(["evaluate", str(run), "--data-dir", str(d), "--out", str(out), "--no-plots"]) == 0

    def refuse(token):
        raise AssertionError(f"{token} in metrics.json")

    json.loads((out / "metrics.json").read_text(), parse_constant=refuse)
    from cifake.base.files import strict

    assert strict({"a": [float("nan"), 1.0, float("inf")], "b": np.float32("nan")}) == {
        "a": [None, 1.0, None],
        "b": None,
    }


def test_source_names_are_escaped_in_the_table(run, tmp_path, capsys):
    d = _sources(tmp_path / "s", ["evil\x1b[31mred", "two\nlines"])
    assert main(["evaluate", str(run), "--data-dir", str(d), "--out", str(tmp_path / "ev"), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "evil\\x1b[31mred" in printed and "two\\x0alines" in printed


# --- 7, 8. one line and exit 2; bounded ----------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 2, float("nan"), "0.5", True])
def test_load_detector_checks_its_threshold(bad):
    from cifake import load_detector

    with pytest.raises(UserError, match="threshold"):
        load_detector(threshold=bad)


def test_arrays_are_bounded_and_read_as_pixels(monkeypatch):
    from cifake.base import limits
    from cifake.data.images import as_batch

    monkeypatch.setattr(limits, "_max_pixels", 10_000)
    with pytest.raises(UserError, match="over the cap"):  # refused before any copy or resize
        as_batch(np.broadcast_to(np.uint8(0), (1, 200, 200, 3)))
    monkeypatch.undo()
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        as_batch(np.full((2, 32, 32, 3), 0.5, np.float32))
    with pytest.raises(UserError, match="real numbers"):
        as_batch(np.zeros((1, 32, 32, 3), np.complex64))
    with pytest.raises(UserError, match="raw bytes"):
        as_batch(b"\x89PNG...")
    assert as_batch(np.full((1, 32, 32, 3), 200.0)).dtype == np.uint8


def test_a_link_to_a_folder_above_is_not_followed(tmp_path):
    from cifake.data.images import walk

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(synth_image(np.random.default_rng(0), False)).save(folder / "a.png")
    (folder / "up").symlink_to("/")
    (folder / "loop").symlink_to(tmp_path)
    files, odd = walk(folder, (".png",))
    assert files == [str(folder / "a.png")]
    assert {Path(p).name for p, _ in odd} == {"up", "loop"}


@pytest.mark.skipif(not REAL_ZIP.is_file(), reason=f"needs the real CIFAKE train split at {REAL_ZIP}")
def test_cifake_train_split_duplicates_and_the_default_split(tmp_path):
    """On CIFAKE as Kaggle ships it: 920 pairs in train/FAKE; the default split keeps each pair together
    (the plain split would put 163 pairs across it)."""
    import zipfile

    with zipfile.ZipFile(REAL_ZIP) as zf:
        zf.extractall(tmp_path)
    paths, labels = list_split(tmp_path, "train")
    hashes = file_hashes(paths)
    assert duplicate_groups(hashes) == {"groups": 99_080, "duplicate_groups": 920, "duplicate_files": 920}
    tr, va = stratified_split(labels, 0.1, 42)
    assert len(set(hashes[tr].tolist()) & set(hashes[va].tolist())) == 163
    tr, va = stratified_split(labels, 0.1, 42, hashes)
    assert not set(hashes[tr].tolist()) & set(hashes[va].tolist())
    assert len(va) == 10_000 + 163


def _png_with_bad_crc(path: Path, chunk: bytes) -> np.ndarray:
    import io
    import struct

    from PIL import PngImagePlugin

    pixels = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "hello")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", pnginfo=info)
    data = bytearray(buf.getvalue())
    i = data.find(chunk)
    (length,) = struct.unpack(">I", data[i - 4 : i])
    data[i + 4 + length] ^= 0xFF
    path.write_bytes(bytes(data))
    return pixels


@pytest.mark.parametrize("chunk,readable", [(b"tEXt", True), (b"IDAT", False)])
def test_png_checksums_follow_one_policy_in_training_and_scoring(tmp_path, chunk, readable):
    """libpng's policy in both decoders: a bad ancillary CRC is ignored, a bad critical one is damage."""
    from cifake.data.decode import decode_files
    from cifake.data.images import read_image

    f = tmp_path / "x.png"
    pixels = _png_with_bad_crc(f, chunk)
    arr, why, _ = read_image(str(f))
    images, bad = decode_files([str(f)])
    assert (arr is not None) == readable == (bad == [])
    if readable:
        assert (arr == pixels).all() and (images[0] == pixels).all()
    else:
        assert "fails its checksum" in why


def test_eda_reports_test_files_with_a_twin_in_train(tmp_path):
    data = make_dataset(tmp_path / "d", per_class=20, splits=("train", "test"))
    f = sorted((data / "train" / "FAKE").iterdir())[0]
    shutil.copyfile(f, data / "test" / "FAKE" / "dup.jpg")
    assert main(["eda", "--data-dir", str(data), "--out", str(tmp_path / "eda")]) == 0
    report = (tmp_path / "eda" / "report.md").read_text()
    assert "test: 1 file(s) byte-identical to a train file" in report


def test_a_link_that_cannot_be_looked_at_is_skipped_not_a_traceback(tmp_path, monkeypatch):
    """As a user (not root) meets it: a link into a folder it may not enter raises PermissionError."""
    import os

    from cifake.data import images

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(synth_image(np.random.default_rng(0), False)).save(folder / "a.png")
    (folder / "locked").symlink_to(tmp_path / "private")
    real_scandir = os.scandir

    class Locked:
        def __init__(self, entry):
            self.entry, self.name, self.path = entry, entry.name, entry.path

        def is_dir(self):
            if self.name == "locked":
                raise PermissionError(13, "Permission denied")
            return self.entry.is_dir()

        def is_file(self):
            return self.entry.is_file()

        def is_symlink(self):
            return self.entry.is_symlink()

    monkeypatch.setattr(images.os, "scandir", lambda p: [Locked(e) for e in real_scandir(p)])
    files, odd = images.walk(folder, (".png",))
    assert files == [str(folder / "a.png")]
    assert [(Path(p).name, why) for p, why in odd] == [("locked", "cannot be looked at (Permission denied)")]
