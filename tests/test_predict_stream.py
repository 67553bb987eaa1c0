"""Streaming cifake predict: chunked, bounded memory, CSV renamed into place, and --shard K/N."""

from __future__ import annotations

import csv
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cifake.tasks.predict as predict
from cifake.cli import main
from cifake.models.detector import Detector

from .conftest import synth_image


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stream") / "imgs"
    rng = np.random.default_rng(0)
    for i in range(60):
        sub = root / ("a" if i % 3 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(synth_image(rng, fake=i % 2 == 1)).save(sub / f"{i:03d}.png")
    (root / "b" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_chunked_csv_is_identical_to_one_chunk(folder, tmp_path, monkeypatch):
    assert main(["predict", str(folder), "--out", str(tmp_path / "one.csv")]) == 3  # broken.png: exit 3
    monkeypatch.setattr(predict, "CHUNK_FILES", 7)  # 61 files -> 9 chunks, the broken one inside a chunk
    assert main(["predict", str(folder), "--out", str(tmp_path / "many.csv")]) == 3
    one, many = (tmp_path / "one.csv").read_text(), (tmp_path / "many.csv").read_text()
    assert one == many and len(_rows(tmp_path / "one.csv")) == 60
    assert not list(tmp_path.glob(".*partial"))


def test_shards_partition_the_input_whatever_the_argument_order(folder, tmp_path):
    whole = {r["path"]: r for r in _rows(_predict(folder, tmp_path / "all.csv", []))}
    seen: dict[str, dict] = {}
    for k in (1, 2, 3):
        args = [str(folder / "b"), str(folder / "a")] if k == 2 else [str(folder)]  # order must not matter
        part = _rows(_predict(folder, tmp_path / f"s{k}.csv", ["--shard", f"{k}/3"], args))
        assert 18 <= len(part) <= 21
        for r in part:
            assert r["path"] not in seen  # disjoint
            seen[r["path"]] = r
    assert seen == whole  # together exactly the whole input, with the same scores


def _predict(folder: Path, out: Path, extra: list[str], paths: list[str] | None = None) -> Path:
    assert main(["predict", *(paths or [str(folder)]), "--out", str(out), *extra]) in (0, 3)
    return out


@pytest.mark.parametrize("bad", ["3", "0/2", "3/2", "a/b"])
def test_bad_shard_is_exit_2(folder, bad, capsys):
    assert main(["predict", str(folder), "--shard", bad]) == 2
    assert "--shard" in capsys.readouterr().err


def test_interrupted_predict_leaves_no_csv(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(predict, "CHUNK_FILES", 10)
    calls = []

    def interrupt_second(self, images, batch_size=1024, tta=False):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return np.full(len(images), 0.5, np.float32)

    monkeypatch.setattr(Detector, "predict", interrupt_second)
    out = tmp_path / "p.csv"
    assert main(["predict", str(folder), "--out", str(out)]) == 130
    assert list(tmp_path.iterdir()) == []  # neither p.csv nor the hidden partial file


def test_memory_of_scoring_does_not_grow_with_the_number_of_files(folder, tmp_path, monkeypatch):
    """Pixels held at once stay at about two chunks (the one scored, the one decoding) for any input size."""
    files = sorted(str(p) for p in folder.rglob("*.png") if p.name != "broken.png")
    many = tmp_path / "many"
    many.mkdir()
    for i in range(600):  # ten times the input, as links
        (many / f"{i:04d}.png").symlink_to(files[i % len(files)])
    detector = Detector.load(None)
    sizes: list[int] = []
    real = predict.load_images
    monkeypatch.setattr(predict, "load_images", lambda chunk: sizes.append(len(chunk)) or real(chunk))

    def peak(paths: list[str]) -> int:
        tracemalloc.start()
        n = sum(len(rows) for rows, _ in predict.score_chunks(paths, detector, 64, chunk=32))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert n == len(paths)
        return top

    peak(files)  # warm-up: tracing and the decoder's first allocations are not what is measured
    small, large = peak(files), peak(sorted(str(p) for p in many.iterdir()))
    assert max(sizes) == 32
    # 10x the files, not 10x the memory: holding every image at once (the old path) would add 600 x 3 KB
    # of pixels twice over (decode buffer and result), about 3.7 MB
    assert large < 1.5 * small + 300_000


def test_decoding_in_worker_processes_gives_the_same_csv(folder, tmp_path, monkeypatch):
    """The parallel decoder is the serial one's twin: same rows, same order, same unreadable file."""
    assert main(["predict", str(folder), "--out", str(tmp_path / "serial.csv")]) == 3
    monkeypatch.setattr(predict, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(predict, "PARALLEL_CHUNK_FILES", 7)  # 61 files -> 9 chunks over the workers
    monkeypatch.setattr(predict.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert predict.decode_workers(61) == 2
    monkeypatch.setattr(predict, "SLOW_DECODE_SECONDS", 0.0)  # every decode counts as slow: workers
    assert main(["predict", str(folder), "--out", str(tmp_path / "workers.csv")]) == 3
    assert (tmp_path / "serial.csv").read_text() == (tmp_path / "workers.csv").read_text()
    monkeypatch.setattr(predict, "PARALLEL_MIN_FILES", 10**9)  # too few files for the default: --workers asks
    assert main(["predict", str(folder), "--out", str(tmp_path / "asked.csv"), "--workers", "3"]) == 3
    assert (tmp_path / "serial.csv").read_text() == (tmp_path / "asked.csv").read_text()


def test_fast_decoding_stays_on_the_thread_slow_decoding_goes_to_workers(tmp_path, monkeypatch):
    files = []
    for i in range(9):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.full((32, 32, 3), 20 * i, np.uint8)).save(files[-1])
    monkeypatch.setattr(predict, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(predict, "PARALLEL_CHUNK_FILES", 3)
    monkeypatch.setattr(predict.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    pools = []
    real = predict.ProcessPoolExecutor
    monkeypatch.setattr(predict, "ProcessPoolExecutor", lambda *a, **k: pools.append(a) or real(*a, **k))
    monkeypatch.setattr(predict, "SLOW_DECODE_SECONDS", 10.0)  # nothing is that slow: the thread decodes
    fast = list(predict.loaded_chunks(files, workers=predict.AUTO))
    assert pools == []
    monkeypatch.setattr(predict, "SLOW_DECODE_SECONDS", 0.0)
    slow = list(predict.loaded_chunks(files, workers=predict.AUTO))
    assert pools == [(2,)]  # the first chunk was timed here, the rest went to one process per core
    for a, b in ((fast, slow), (slow, [predict.load_images(files)])):
        assert [f for c in a for f in c.ok] == [f for c in b for f in c.ok] == files
        np.testing.assert_array_equal(np.concatenate([c.images for c in a]), np.concatenate([c.images for c in b]))


def test_bad_workers_is_exit_2(folder, capsys):
    assert main(["predict", str(folder), "--workers", "-1"]) == 2
    assert "--workers -1" in capsys.readouterr().err


def test_workers_keep_the_pixel_cap_and_stop_with_the_generator(tmp_path):
    import multiprocessing

    from cifake.base import limits

    files = []
    for i, side in enumerate((32, 64, 32, 64, 32)):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.full((side, side, 3), 40 * i, np.uint8)).save(files[-1])
    saved = limits.max_pixels()
    limits.set_max_pixels(48 * 48)  # 32x32 passes, 64x64 is over the cap: in the workers too
    try:
        chunks = predict.loaded_chunks(files, chunk=2, workers=2)
        first = next(chunks)
        assert first.ok == files[:1] and "cap" in first.unreadable[0][1]
        chunks.close()  # stopped early: the pool goes with it
        assert multiprocessing.active_children() == []
        got = list(predict.loaded_chunks(files, chunk=2, workers=2))
    finally:
        limits.set_max_pixels(saved)
    assert [f for c in got for f in c.ok] == files[0::2]
    assert [p for c in got for p, _ in c.unreadable] == files[1::2]
    assert [int(c.images[0, 0, 0, 0]) for c in got] == [0, 80, 160]


def test_decode_workers_only_for_large_inputs_on_several_cores(monkeypatch):
    monkeypatch.setattr(predict.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert predict.decode_workers(predict.PARALLEL_MIN_FILES - 1) == 0
    assert predict.decode_workers(predict.PARALLEL_MIN_FILES) == predict.MAX_DECODE_WORKERS
    monkeypatch.setattr(predict.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert predict.decode_workers(10**6) == 0
