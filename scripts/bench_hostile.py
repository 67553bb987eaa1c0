"""Re-run the hostile-input probes that once cost gigabytes, minutes or data, and print what each costs now.

Each probe builds its input in a temporary folder, runs the real `cifake` command in a child
process under `/usr/bin/time`, and prints the exit code, wall time and peak memory (RSS) of that
process, with what happened. Nothing here needs the dataset or the network.

    python scripts/bench_hostile.py
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import laughs_yaml, png_bomb, zip_bomb  # the inputs the tests use
from tests.test_decoders_vs_caps import iccp_bomb_png


def run(argv: list[str]) -> tuple[int, float, float, str]:
    """(exit code, seconds, peak RSS in MiB, last stderr line) of `cifake ARGV` in a child process."""
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %e %M", sys.executable, "-m", "cifake", *argv],
        capture_output=True,
        text=True,
    )
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    seconds, kib = (float(v) for v in lines[-1].split()[1:3])
    said = next((x for x in lines[:-1] if "warning" in x), None) or next(
        (x for x in reversed(lines[:-1]) if "error" in x), ""
    )
    return proc.returncode, seconds, kib / 1024, said


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        bomb = zip_bomb(t / "bomb.zip", 3 << 30)
        size = bomb.stat().st_size / 2**20
        code, s, mb, said = run(["download", "--archive", str(bomb), "--data-dir", str(t / "c")])
        left = sorted(p.name for p in t.iterdir() if p.name != "bomb.zip")
        rows.append(
            (
                f"zip bomb: 3 GiB member in a {size:.1f} MiB zip",
                code,
                s,
                mb,
                f"{said[:110]} | left: {left or 'nothing'}",
            )
        )

        pictures = t / "Pictures"
        (pictures / "holiday").mkdir(parents=True)
        (pictures / "holiday" / "beach.jpg").write_bytes(b"precious")
        small = t / "small.zip"
        with zipfile.ZipFile(small, "w") as zf:
            buf = io.BytesIO()
            Image.new("RGB", (32, 32)).save(buf, format="JPEG")
            zf.writestr("train/REAL/0.jpg", buf.getvalue())
            zf.writestr("train/FAKE/0.jpg", buf.getvalue())
        code, s, mb, said = run(["download", "--archive", str(small), "--data-dir", str(pictures), "--force"])
        intact = (pictures / "holiday" / "beach.jpg").read_bytes() == b"precious"
        rows.append(("download --force onto ~/Pictures", code, s, mb, f"{said[:110]} | files intact: {intact}"))

        plain = t / "plain.png"
        Image.new("RGB", (32, 32)).save(plain)
        code, s, mb, said = run(["predict", str(plain)])
        rows.append(("an ordinary 32x32 PNG to predict (the baseline)", code, s, mb, "scored"))

        png = png_bomb(t / "bomb.png")
        code, s, mb, said = run(["predict", str(png)])
        rows.append((f"23000x23000 PNG ({png.stat().st_size / 2**20:.1f} MiB) to predict", code, s, mb, said[:150]))

        (t / "lol.yaml").write_text(laughs_yaml(9) + "\n")
        code, s, mb, said = run(["config", "--config", str(t / "lol.yaml")])
        rows.append(("billion-laughs YAML (9 levels of 10 aliases)", code, s, mb, said[:150]))

        rows += second_round(t)
        rows += third_round(t)

    print(f"{'probe':<48} {'exit':>4} {'seconds':>8} {'peak RSS':>9}  what it said")
    for name, code, s, mb, said in rows:
        print(f"{name:<48} {code:>4} {s:>8.2f} {mb:>6.0f} MiB  {said}")
    return 0


def second_round(t: Path) -> list[tuple]:
    """Outputs onto inputs, decoders against the caps, special files, nesting, odd images."""
    import os
    import socket

    import numpy as np

    rows = []
    photos = t / "photos"
    photos.mkdir()
    Image.new("RGB", (32, 32), (90, 120, 150)).save(photos / "photo.jpg")
    before = (photos / "photo.jpg").read_bytes()
    code, s, mb, said = run(["predict", str(photos), "--out", str(photos / "photo.jpg")])
    intact = (photos / "photo.jpg").read_bytes() == before
    rows.append(("predict --out onto an input image", code, s, mb, f"{said[:100]} | image intact: {intact}"))

    notes = t / "notes.txt"
    notes.write_text("my notes")
    code, s, mb, said = run(["export", "pretrained", "--out", str(notes)])
    rows.append(
        (
            "export --out onto an existing notes.txt",
            code,
            s,
            mb,
            f"{said[:100]} | kept: {notes.read_text() == 'my notes'}",
        )
    )

    iccp = iccp_bomb_png(t / "iccp.png", 12000, 12000)
    code, s, mb, said = run(["predict", str(iccp)])
    rows.append(("12000x12000 PNG whose iCCP Pillow refuses", code, s, mb, said[:150]))

    frames = [Image.new("P", (1000, 1000), i % 256) for i in range(300)]
    frames[0].save(t / "frames.gif", save_all=True, append_images=frames[1:])
    size = (t / "frames.gif").stat().st_size / 2**20
    code, s, mb, said = run(["predict", str(t / "frames.gif")])
    rows.append((f"GIF 1000x1000 x 300 frames ({size:.1f} MiB)", code, s, mb, said[:150] or "scored, first frame"))

    odd = t / "odd"
    odd.mkdir()
    Image.new("RGB", (32, 32)).save(odd / "ok.png")
    (odd / "dangling.jpg").symlink_to(t / "nowhere.jpg")
    os.mkfifo(odd / "pipe.png")
    (odd / "zero.jpg").symlink_to("/dev/zero")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(odd / "sock.png"))
    code, s, mb, said = run(["predict", str(odd)])
    sock.close()
    rows.append(("folder with a broken link, FIFO, socket, /dev/zero", code, s, mb, said[:150]))

    leaf = t / "deep"
    leaf.mkdir()
    for _ in range(1500):  # one level at a time: pathlib's mkdir(parents=True) itself recurses
        leaf = leaf / "d"
        leaf.mkdir()
    Image.new("RGB", (32, 32)).save(leaf / "x.png")
    code, s, mb, said = run(["predict", str(t / "deep")])
    rows.append(("a folder tree 1,500 levels deep", code, s, mb, said[:150] or "scored"))
    (leaf / "x.png").unlink()
    while leaf != t:  # bottom up: the temporary folder's own clean-up would recurse 1,500 deep
        leaf.rmdir()
        leaf = leaf.parent

    Image.fromarray(np.full((32, 32), 0.5, np.float32)).save(t / "float.tif")
    code, s, mb, said = run(["predict", str(t / "float.tif"), str(plain := t / "plain.png")])
    rows.append(("a float32 TIFF (mode F) beside a PNG", code, s, mb, said[:150]))

    code, s, mb, said = run(["predict", str(t / ("x" * 300 + ".png"))])
    rows.append(("a file name of 300 bytes", code, s, mb, said[:150]))

    model_dir = t / "m"
    model_dir.mkdir()
    (model_dir / "best.keras").write_bytes(
        (Path(__file__).resolve().parents[1] / "cifake/pretrained/detector.keras").read_bytes()
    )
    (model_dir / "threshold.json").write_text("[" * 30_000 + "]" * 30_000)
    code, s, mb, said = run(["predict", str(plain), "--model", str(model_dir / "best.keras")])
    rows.append(("threshold.json nested 30,000 deep", code, s, mb, said[:150]))
    return rows


def third_round(t: Path) -> list[tuple]:
    """Honest splits and other people's files: leaks into training, outputs onto files cifake did not
    write, per-source evaluation that once reported wrong figures with exit 0."""
    import shutil

    from tests.conftest import make_dataset

    rows = []
    repo = Path(__file__).resolve().parents[1]
    data = make_dataset(t / "ds", per_class=30, splits=("train", "test"))
    train = ["train", "--config", str(repo / "configs/smoke.yaml"), f"data.dir={data}", "data.fraction=1.0"]
    train += [f"train.runs_dir={t / 'runs'}", "train.epochs=1", "data.val_fraction=0.25"]
    for what, override in (
        ("data.extra_fake=[DATA/train/REAL]", f"data.extra_fake=[{data}/train/REAL]"),
        ("data.extra_real=[DATA/test/REAL]", f"data.extra_real=[{data}/test/REAL]"),
        ("data.extra_fake=[the dataset root]", f"data.extra_fake=[{data}]"),
    ):
        code, s, mb, said = run([*train, override])
        rows.append((what, code, s, mb, f"{said[:100]} | runs written: {(t / 'runs').exists()}"))
    copies = t / "copies"
    copies.mkdir()
    for f in sorted((data / "test" / "FAKE").iterdir())[:3]:
        Image.open(f).save(copies / (f.stem + ".png"))  # test images saved again: other bytes, same pixels
    code, s, mb, said = run([*train, f"data.extra_fake=[{copies}]"])
    rows.append(("extra folder of test images re-saved as PNG", code, s, mb, said[:150]))

    code, s, mb, said = run(["fakes", "--data-dir", str(data), "--out", str(data), "--val-fraction", "0.25"])
    rows.append(("fakes --out onto the dataset", code, s, mb, f"{said[:100]} | val/ made: {(data / 'val').exists()}"))
    mine = t / "mine"
    (mine / "val" / "REAL").mkdir(parents=True)
    (mine / "val" / "REAL" / "notes.txt").write_text("mine")
    code, s, mb, said = run(["fakes", "--data-dir", str(data), "--out", str(mine), "--val-fraction", "0.25"])
    kept = (mine / "val" / "REAL" / "notes.txt").is_file()
    rows.append(("fakes --out DIR whose val/REAL is the user's", code, s, mb, f"{said[:100]} | kept: {kept}"))

    notes = t / "notes.txt"
    notes.write_text("my notes")
    code, s, mb, said = run(["predict", str(t / "plain.png"), "--out", str(notes)])
    rows.append(
        ("predict --out onto notes.txt", code, s, mb, f"{said[:100]} | kept: {notes.read_text() == 'my notes'}")
    )

    code, s, mb, said = run([*train, "--name", "r"])
    run_dir = t / "runs" / "r"
    (run_dir / "metrics.json").unlink()  # as if killed
    cfg = run_dir / "config.yaml"
    cfg.write_text(cfg.read_text().replace("split_seed: 42", "split_seed: 7"))
    code, s, mb, said = run(["train", "--resume", str(run_dir), "train.epochs=2"])
    rows.append(("resume after split_seed edited in config.yaml", code, s, mb, said[:150]))

    src = t / "sources"
    for folder in ("REAL", "FAKE/REAL", "FAKE/gan"):
        (src / folder).mkdir(parents=True)
        for f in sorted((data / "test" / ("REAL" if folder == "REAL" else "FAKE")).iterdir())[:10]:
            shutil.copyfile(f, src / folder / f.name)
    (src / "FAKE" / "gan" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    code, s, mb, said = run(["evaluate", str(run_dir), "--data-dir", str(src), "--out", str(t / "ev"), "--no-plots"])
    strict = "NaN" not in (t / "ev" / "metrics.json").read_text() if (t / "ev" / "metrics.json").exists() else None
    rows.append(
        ("sources: FAKE/REAL folder + an undecodable file", code, s, mb, f"{said[:100]} | strict JSON: {strict}")
    )
    return rows


if __name__ == "__main__":
    sys.exit(main())
