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

    print(f"{'probe':<48} {'exit':>4} {'seconds':>8} {'peak RSS':>9}  what it said")
    for name, code, s, mb, said in rows:
        print(f"{name:<48} {code:>4} {s:>8.2f} {mb:>6.0f} MiB  {said}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
