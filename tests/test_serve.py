"""cifake serve: scoring logic, and an end-to-end run in a real headless Chromium (Debian's package).

The browser test needs `playwright` (Python package; its own browser download is never used) and
Chromium at /usr/bin/chromium (`apt-get install chromium`); it skips, saying which is missing,
when either is absent. `.ci/run` installs both.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifake.cli import main

from .conftest import synth_image

gr = pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed: pip install '.[demo]'")

from cifake.models.presets import PRETRAINED  # noqa: E402
from cifake.tasks.serve import SHIPPED, build_app, launch, model_choices, score_uploads  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    paths = {"fake": tmp_path / "fake.png", "text": tmp_path / "notes.jpg", "big": tmp_path / "big.png"}
    Image.fromarray(synth_image(rng, True)).save(paths["fake"])
    paths["text"].write_text("this is not an image")
    Image.fromarray(rng.integers(0, 256, (700, 700, 3), dtype=np.uint8)).save(paths["big"])  # ~1.5 MB of noise
    return paths


def test_score_uploads_refuses_non_images_and_big_files(tmp_path):
    f = _files(tmp_path)
    rows, gallery, status = score_uploads(
        [str(f["fake"]), str(f["text"]), str(f["big"])], PRETRAINED, max_bytes=1_000_000, cache={}
    )
    assert [r[0] for r in rows] == ["fake.png"]
    assert 0 <= rows[0][1] <= 1 and rows[0][2] in ("FAKE", "REAL")
    assert len(gallery) == 1 and gallery[0][0].shape == (256, 256, 3)
    assert (
        "refused notes.jpg: not an image" in status and "refused big.png" in status and "over the 1 MB limit" in status
    )


def test_model_choices_checks_paths(tmp_path, capsys):
    assert list(model_choices([])) == [SHIPPED]
    assert main(["serve", str(tmp_path / "missing.keras")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_app_in_headless_chromium(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install playwright")
    if not os.path.exists(CHROMIUM):
        pytest.skip("no Chromium at /usr/bin/chromium: apt-get install chromium")
    f = _files(tmp_path)
    port = _free_port()
    app = build_app(model_choices([]), max_bytes=1_000_000)
    launch(app, "127.0.0.1", port, block=False)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=60_000)
            page.locator("#uploads input[type=file]").set_input_files([str(f["fake"]), str(f["text"])])
            page.wait_for_timeout(1500)  # let the upload finish before scoring
            page.locator("#score").click()
            page.get_by_text("Scored 1 image(s)").wait_for(timeout=60_000)
            first_cell = page.locator("#scores").get_by_test_id("cell-0-0")
            first_cell.wait_for(timeout=30_000)
            assert first_cell.inner_text().strip() == "fake.png"
            table_text = page.locator("#scores").inner_text()
            score = float(page.locator("#scores").get_by_test_id("cell-0-1").inner_text())
            status_text = page.locator("#status").inner_text()
            page.locator("#gradcam img").first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
            if os.environ.get("CIFAKE_SCREENSHOT"):  # used to refresh docs/serve.png
                shutil.copy(tmp_path / "app.png", os.environ["CIFAKE_SCREENSHOT"])
            browser.close()
    finally:
        app.close()
    assert 0.0 <= score <= 1.0
    assert "FAKE" in table_text or "REAL" in table_text
    assert "refused notes.jpg" in status_text
    assert (tmp_path / "app.png").stat().st_size > 10_000


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_max_mb_must_be_positive_and_finite(value, capsys):
    assert main(["serve", "--max-mb", value]) == 2
    assert "positive, finite number" in capsys.readouterr().err


def test_port_in_use_is_one_line_before_any_url(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert "http://" not in captured.out
    assert f"cannot listen on 127.0.0.1:{port}" in captured.err and "Traceback" not in captured.err


@pytest.mark.slow
def test_server_refuses_big_uploads_while_receiving_and_cleans_up_on_ctrl_c(tmp_path):
    """A 1 GB upload once stayed in /tmp/gradio after shutdown, and Ctrl-C exited 0."""
    import signal
    import subprocess
    import sys
    import time

    import requests

    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cifake", "serve", "--port", str(port), "--max-mb", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # started as a shell without job control starts background jobs: SIGINT ignored; it must still stop
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        line = proc.stdout.readline()  # printed once the server listens
        assert f"http://127.0.0.1:{port}" in line, line + proc.stderr.read()
        uploads = Path(line.split("kept in ")[1].split(" until")[0])
        assert uploads.is_dir()
        url = f"http://127.0.0.1:{port}/gradio_api/upload"
        small = requests.post(url, files={"files": ("ok.png", b"\x89PNG" + b"\0" * 1000)}, timeout=30)
        assert small.status_code == 200, small.text
        assert any(uploads.rglob("ok.png"))
        big = requests.post(url, files={"files": ("big.png", b"\0" * 3_000_000)}, timeout=30)
        assert big.status_code == 413
        assert not any(uploads.rglob("big.png"))
        time.sleep(0.5)
    finally:
        _ctrl_c(proc)
    assert not uploads.exists(), "uploads must be deleted when the server stops"


@pytest.mark.slow
def test_pixel_bomb_upload_is_refused_from_its_header(tmp_path):
    """A 23000x23000 PNG once left the server at 2.3 GB; it is now refused without being decoded."""
    from .conftest import png_bomb

    f = _files(tmp_path)
    bomb = png_bomb(tmp_path / "bomb.png")
    rows, _, status = score_uploads([str(f["fake"]), str(bomb)], PRETRAINED, max_bytes=10_000_000, cache={})
    assert [r[0] for r in rows] == ["fake.png"]
    assert "refused bomb.png: 23000x23000 = 529 megapixels is over the 50 MP cap" in status


def test_scoring_through_the_server_leaves_nothing_in_the_temp_folder(tmp_path):
    """Uploads and the Grad-CAM images Gradio caches for the gallery live in the server's private
    folder and go with it: with TMPDIR pointed at an empty folder, that folder is empty again after
    an image was scored and the server stopped (docs/commands.md: nothing stays)."""
    import subprocess
    import sys

    from gradio_client import Client, handle_file
    from PIL import Image

    from .conftest import synth_image

    system_tmp = tmp_path / "systmp"
    system_tmp.mkdir()
    image = tmp_path / "photo.png"
    Image.fromarray(synth_image(np.random.default_rng(0), fake=True)).save(image)
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(system_tmp)}
    env.pop("GRADIO_TEMP_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cifake", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line, line + proc.stderr.read()
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        table, gallery, _ = client.predict(
            [handle_file(str(image))], "shipped detector (detector.keras)", api_name="/run"
        )
        assert table["data"][0][0] == "photo.png" and len(gallery) == 1  # scored, with its Grad-CAM image
        assert any(system_tmp.rglob("*.webp")) or any(system_tmp.rglob("*.png"))  # cached while it runs
    finally:
        _ctrl_c(proc)
    assert list(system_tmp.rglob("*")) == [], "the server left files behind in the temp folder"


def _ctrl_c(proc) -> None:
    """Stop a `cifake serve` subprocess as a user does (Ctrl-C: exit 130); kill it if it will not stop."""
    import signal

    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
