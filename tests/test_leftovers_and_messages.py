"""Leftovers of killed runs are cleaned up, the cache is never said removed when it was not, and
messages stay true at the extremes (tiny or huge caps, control characters in names)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cifake.base import limits, text
from cifake.base.leftovers import remove_dead
from cifake.cli import main


def test_stale_partials_of_dead_processes_are_removed(tmp_path):
    out = tmp_path / "p.csv"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".p.csv.{int(dead.stdout)}.partial"  # that process has exited
    live = tmp_path / f".p.csv.{os.getpid()}.partial"  # this one is running
    other = tmp_path / ".q.csv.1.partial"
    for f in (stale, live, other):
        f.write_text("path,p_fake\n")
    assert remove_dead(out, "partial") == [stale]
    assert not stale.exists() and live.exists() and other.exists()


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_cache_clear_never_claims_to_remove_what_it_did_not(tmp_path, capsys, kind):
    root = tmp_path / "data"
    root.mkdir()
    cache = root / ".cifake-cache"
    if kind == "symlink":
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "keep.npz").write_bytes(b"x")
        cache.symlink_to(tmp_path / "elsewhere")
    else:
        cache.write_text("not a folder")
    assert main(["cache", "--data-dir", str(root), "--clear"]) == 2
    err = capsys.readouterr().err
    assert "nothing removed" in err and "removed " not in err.replace("nothing removed", "")
    assert cache.exists() or cache.is_symlink()
    if kind == "symlink":
        assert (tmp_path / "elsewhere" / "keep.npz").exists()


def test_cache_clear_without_a_cache_says_so(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert main(["cache", "--data-dir", str(tmp_path / "data"), "--clear"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["1e308", "1e-300", "0.0001"])
def test_pixel_cap_out_of_range_is_one_line(tmp_path, capsys, value):
    (tmp_path / "a.png").write_bytes(b"")
    assert main(["predict", str(tmp_path / "a.png"), "--max-megapixels", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-megapixels" in err[0] and "Traceback" not in err[0]


def test_size_message_keeps_its_digits():
    saved = limits.max_pixels()
    try:
        limits.set_max_megapixels(0.001024)
        assert limits.size_problem(33, 32) == (
            "33x32 = 0.00106 megapixels is over the 0.001024 MP cap (raise max_megapixels, --max-megapixels on the command line, to admit it)"
        )
    finally:
        limits.set_max_megapixels(saved / 1e6)


def test_control_characters_in_names_cannot_split_a_table_row():
    assert text.printable("a\nb\rc\td.jpg") == "a\\x0ab\\x0dc\\x09d.jpg"
    assert "\n" not in text.printable("x\n" * 3)
