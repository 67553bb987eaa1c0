"""cifake generators: other projects' samples encoded as CIFAKE's files, split, laid out, refused when bad."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from cifake.cli import main
from cifake.config import DataConfig
from cifake.data.listing import check_extra_folders, load_splits
from cifake.tasks.generators import split_samples

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]
SPLIT = ["--split-seed", "7", "--val-fraction", "0.25"]
TSV = "generator\tfamily\tmodel\trepository\tlicence\ngan_a\tGAN\ta toy GAN\tsomeone/gan\tMIT\nflow_b\tflow\ta toy flow\tsomeone/flow\tMIT\n"


def _png(rng, size=(32, 32)) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def make_generators(root: Path) -> Path:
    """generators/{gan_a: 10 samples, two of them identical twice over; flow_b: 6, one 40x40, one
    corrupt}/ and generators.tsv."""
    rng = np.random.default_rng(3)
    gen = root / "generators"
    (gen / "gan_a").mkdir(parents=True)
    (gen / "flow_b").mkdir()
    same = _png(rng)
    for i in range(10):
        (same if i in (0, 5, 7) else _png(rng)).save(gen / "gan_a" / f"{i:04d}.png")
    for i in range(5):
        _png(rng, (40, 40) if i == 2 else (32, 32)).save(gen / "flow_b" / f"{i:04d}.png")
    (gen / "flow_b" / "0005.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (gen / "generators.tsv").write_text(TSV)
    return gen


def zipped(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(folder.parent.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder.parent).as_posix())
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("gens")
    data = make_dataset(root / "data", per_class=40)
    archive = zipped(make_generators(root / "src"), root / "generators.zip")
    out = root / "out"
    code = main(["generators", str(archive), "--data-dir", str(data), "--out", str(out), "--real-images", "6", *SPLIT])
    return data, archive, out, code


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def test_layout_manifest_and_provenance(imported):
    _, _, out, code = imported
    assert code == 3  # one file of flow_b does not decode: skipped, said, and the exit code tells
    manifest = json.loads((out / "generators.json").read_text())
    gens = manifest["generators"]
    assert set(gens) == {"gan_a", "flow_b"}
    assert gens["gan_a"]["family"] == "GAN" and gens["gan_a"]["group"] == "GAN"
    assert gens["flow_b"]["group"] == "flow" and gens["flow_b"]["repository"] == "someone/flow"
    assert gens["flow_b"]["samples"] == 5 and gens["flow_b"]["skipped"] == 1 and gens["flow_b"]["resized"] == 1
    assert manifest["skipped"]["flow_b"]["files"] == 1
    for name, g in gens.items():
        train = sorted((out / "train" / "FAKE" / name).glob("*.jpg"))
        val = sorted((out / "val" / "FAKE" / name).glob("*.jpg"))
        assert (len(train), len(val)) == (g["train"], g["eval"]) and len(train) + len(val) == g["samples"]
        assert len(train) >= 1 and len(val) >= 1


def test_every_sample_is_encoded_with_a_cifake_files_tables(imported):
    data, _, out, _ = imported
    with Image.open(next((data / "train" / "REAL").glob("*.jpg"))) as ref:
        tables, sampling = dict(ref.quantization), JpegImagePlugin.get_sampling(ref)
    outputs = sorted((out / "train" / "FAKE").rglob("*.jpg")) + sorted((out / "val" / "FAKE").rglob("*.jpg"))
    assert len(outputs) == 15
    for f in outputs:
        with Image.open(f) as im:
            assert im.format == "JPEG" and im.size == (32, 32)
            assert dict(im.quantization) == tables and JpegImagePlugin.get_sampling(im) == sampling


def test_real_photos_come_from_the_validation_split_only(imported):
    data, _, out, _ = imported
    splits = load_splits(DataConfig(dir=str(data), split_seed=7, val_fraction=0.25), progress=False)
    val_real = {Path(p).name for p, y in zip(splits["val"].paths, splits["val"].labels, strict=True) if y == 0}
    train_real = {Path(p).name for p, y in zip(splits["train"].paths, splits["train"].labels, strict=True) if y == 0}
    copied = {p.name for p in (out / "val" / "REAL").iterdir()}
    assert len(copied) == 6 and copied <= val_real and not copied & train_real


def test_identical_samples_never_straddle_training_and_evaluation(imported):
    _, _, out, _ = imported
    train = {_digest(f) for f in (out / "train" / "FAKE" / "gan_a").glob("*.jpg")}
    val = {_digest(f) for f in (out / "val" / "FAKE" / "gan_a").glob("*.jpg")}
    assert not train & val
    images = np.zeros((6, 2, 2, 3), np.uint8)
    images[[1, 3, 4]] = 7  # three copies of one image: one group
    for seed in range(20):
        tr, ev = split_samples(images, 0.5, seed, 0)
        assert sorted([*tr, *ev]) == list(range(6)) and len(tr) and len(ev)
        assert {1, 3, 4} <= set(tr) or {1, 3, 4} <= set(ev)


def test_the_evaluation_folder_is_never_training_data_and_the_training_one_is(imported):
    from cifake.base.errors import UserError

    data, _, out, _ = imported
    check_extra_folders(DataConfig(dir=str(data), extra_fake=[str(out / "train" / "FAKE")]))
    for held in (out / "val" / "FAKE", out / "val" / "FAKE" / "gan_a", out / "val"):
        with pytest.raises(UserError, match="evaluation folder of cifake generators"):
            check_extra_folders(DataConfig(dir=str(data), extra_fake=[str(held)]))


def test_a_folder_works_as_the_zip_does_and_an_existing_output_needs_force(imported, tmp_path):
    data, archive, out, _ = imported
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(folder)
    again = tmp_path / "again"
    args = ["generators", str(folder), "--data-dir", str(data), "--out", str(again), "--real-images", "6", *SPLIT]
    assert main(args) == 3
    same = json.loads((again / "generators.json").read_text())["generators"]
    assert same == json.loads((out / "generators.json").read_text())["generators"]  # seeded: the same split
    assert main(args) == 2  # refuses to replace without --force
    assert main([*args, "--force"]) == 3


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda p: p.write_text("not a zip"), "neither a zip archive nor a folder"),
        (lambda p: zipfile.ZipFile(p, "w").writestr("notes/readme.txt", "hello"), "holds no generator folders"),
        (lambda p: zipfile.ZipFile(p, "w").writestr("g/x/0001.png", b"\x89PNG broken"), "not one sample decodes"),
        (lambda p: None, "no such file or folder"),
    ],
)
def test_bad_archives_are_one_line_and_exit_2(imported, tmp_path, capsys, make, said):
    data, _, _, _ = imported
    archive = tmp_path / "bad.zip"
    make(archive)
    out = tmp_path / "o"
    assert main(["generators", str(archive), "--data-dir", str(data), "--out", str(out), *SPLIT]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cifake generators: error:")]
    assert len(errors) == 1 and said in errors[0]
    assert not (out / "train").exists() and not (out / "val").exists()


@pytest.mark.slow
def test_leave_one_family_out_holds_out_each_group_in_turn(imported, tmp_path):
    import subprocess
    import sys

    data, _, out, _ = imported
    table_file = tmp_path / "lofo.json"
    cmd = [sys.executable, str(REPO / "scripts" / "leave_one_out.py"), "--generators", str(out)]
    cmd += ["--json", str(table_file), "--config", str(REPO / "configs" / "smoke.yaml")]
    cmd += ["--runs-dir", str(tmp_path / "runs"), f"data.dir={data}", "data.fraction=1.0", "data.split_seed=7"]
    cmd += ["data.val_fraction=0.25", "train.epochs=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(table_file.read_text())
    assert summary["by"] == "group" and summary["units"] == {"GAN": ["gan_a"], "flow": ["flow_b"]}
    assert list(summary["rows"]) == ["none", "GAN", "flow"]
    assert summary["rows"]["GAN"]["trained_with"] == ["flow_b"] and summary["rows"]["none"]["trained_with"] == []
    assert 0 <= summary["held_out_mean_roc_auc"] <= 1
    assert "all but GAN" in done.stdout and "mean ROC AUC over held-out groups" in done.stdout
    config = (tmp_path / "runs" / "logo_GAN" / "config.yaml").read_text()
    assert "flow_b" in config and "gan_a" not in config  # the held-out family never reached training


# --- levers of the benchmark: balanced extra folders, rare fakes spared the robust augmentations ----------


@pytest.fixture(scope="module")
def two_generators(tmp_path_factory) -> tuple[Path, list[Path]]:
    from .conftest import synth_image

    root = tmp_path_factory.mktemp("levers")
    data = make_dataset(root / "data", per_class=30)
    rng = np.random.default_rng(4)
    folders = []
    for name, n in (("gan", 6), ("flow", 15)):
        folder = root / "gens" / "train" / "FAKE" / name
        folder.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(synth_image(rng, True)).save(folder / f"{i}.png")
        folders.append(folder)
    return data, folders


def test_extra_min_images_cycles_each_small_folder_to_the_same_weight(two_generators):
    from cifake.data.listing import ORIGIN_COPY, ORIGIN_EXTRA, split_info

    data, (gan, flow) = two_generators
    extra = [str(gan), str(flow)]
    once = load_splits(DataConfig(dir=str(data), val_fraction=0.25, extra_fake=extra), progress=False)
    cycled = load_splits(
        DataConfig(dir=str(data), val_fraction=0.25, extra_fake=extra, extra_min_images=12), progress=False
    )
    base = len(once["train"]) - 21
    assert len(cycled["train"]) == base + 12 + 15  # gan 6 -> 12 (two rounds), flow 15 stays 15
    origin = cycled["train"].origin
    assert (origin == ORIGIN_EXTRA).sum() == 21 and (origin == ORIGIN_COPY).sum() == 6
    from_gan = [p for p in cycled["train"].paths if "/gan/" in p]
    assert sorted(from_gan) == sorted([p for p in once["train"].paths if "/gan/" in p] * 2)  # every image twice
    assert cycled["train"].from_extra().sum() == 27 and not once["val"].from_extra().any()
    info_once, info_cycled = split_info(once), split_info(cycled)
    assert info_cycled["train_repeats"] == 6 and "train_repeats" not in info_once
    for key in ("duplicate_groups", "duplicate_files"):  # copies are not duplicates of the dataset
        assert info_cycled[key] == info_once[key]
    assert info_cycled["split_fingerprint"] != info_once["split_fingerprint"]  # resume sees the change


def test_spare_extra_leaves_extra_images_untouched_by_the_robust_augmentations(two_generators):
    from cifake.config import load_config
    from cifake.data.pipelines import train_dataset

    data, (gan, flow) = two_generators
    cfg = load_config(None, [f"data.dir={data}", "data.val_fraction=0.25", f"data.extra_fake=[{gan},{flow}]"])
    train = load_splits(cfg.data, progress=False)["train"]
    originals = {img.tobytes() for img in train.images}
    extra = {img.tobytes() for img in train.images[train.from_extra()]}
    for spare in (False, True):
        aug = load_config(None, ["augment.noise=1.0", f"augment.spare_extra={str(spare).lower()}"]).augment
        out = np.concatenate([x.numpy() for x, _ in train_dataset(train, 16, seed=1, epochs=1, robust=aug)])
        kept = {img.tobytes() for img in out if img.tobytes() in originals}
        assert kept == (extra if spare else set())  # spared: exactly the extra images come out as they went in
