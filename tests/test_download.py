"""cifake download: the real kagglehub/kagglesdk client against a stand-in server, and archive import."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cifake.cli import main
from cifake.data.layout import MARKER, verify

from .conftest import make_zip, zip_bomb
from .kaggle_server import DOWNLOAD_PATH, FakeKaggle


@pytest.fixture
def kaggle_env(tmp_path, monkeypatch):
    """No real credentials anywhere; the client points at http://localhost:7777."""
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / ".kaggle"))
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    return home


def _zip_bytes(tmp_path: Path, **kw) -> bytes:
    return make_zip(tmp_path / "served.zip", **kw).read_bytes()


def test_download_with_token(tmp_path, kaggle_env, monkeypatch, capfd):
    monkeypatch.setenv("KAGGLE_API_TOKEN", "good-token")
    target = tmp_path / "data" / "cifake"
    with FakeKaggle(_zip_bytes(tmp_path, prefix="")) as server:
        assert main(["download", "--data-dir", str(target)]) == 0
    assert (target / MARKER).is_file()
    assert len(list((target / "train" / "FAKE").iterdir())) == 20
    assert len(list((target / "test" / "REAL").iterdir())) == 20
    assert [r[1] for r in server.requests][:2] == [DOWNLOAD_PATH, "/files/cifake.zip"]
    out = capfd.readouterr()
    assert "good-token" not in out.out + out.err
    assert not list(target.parent.glob(".cifake.*")), "staging folders must be cleaned up"
    # idempotent: a second run does nothing and says so, without contacting the server
    assert main(["download", "--data-dir", str(target)]) == 0
    assert "already complete" in capfd.readouterr().out


def test_download_with_legacy_kaggle_json(tmp_path, kaggle_env):
    (kaggle_env / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "alice", "key": "good-key"}))
    with FakeKaggle(_zip_bytes(tmp_path)):
        assert main(["download", "--data-dir", str(tmp_path / "d")]) == 0


def test_rejected_token_exit_2(tmp_path, kaggle_env, monkeypatch, capfd):
    monkeypatch.setenv("KAGGLE_API_TOKEN", "wrong-token")
    with FakeKaggle(_zip_bytes(tmp_path)):
        assert main(["download", "--data-dir", str(tmp_path / "d")]) == 2
    err = capfd.readouterr().err
    assert "rejected the credentials (HTTP 401)" in err and "KAGGLE_API_TOKEN" in err
    assert "wrong-token" not in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()


def test_no_credentials_exit_2(tmp_path, kaggle_env, capfd):
    assert main(["download", "--data-dir", str(tmp_path / "d")]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no Kaggle credentials found" in err[0]
    assert "~/.kaggle/access_token" in err[0] and "--archive" in err[0]
    assert "KAGGLE_USERNAME" in err[0] and "KAGGLE_KEY" in err[0]


def test_offline_download_says_so_and_leaves_nothing(tmp_path, kaggle_env, monkeypatch, capfd):
    """Nothing listens on the stand-in's port: no "resuming" (nothing started), no empty staging folder."""
    monkeypatch.setenv("KAGGLE_API_TOKEN", "good-token")
    assert main(["download", "--data-dir", str(tmp_path / "d")]) == 2
    err = capfd.readouterr().err
    assert "retrying (attempt 2/3)" in err and "resuming" not in err
    assert "nothing was downloaded" in err and "online" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # no d/, no .d.download/


def test_dropped_connection_resumes(tmp_path, kaggle_env, monkeypatch):
    monkeypatch.setenv("KAGGLE_API_TOKEN", "good-token")
    target = tmp_path / "cifake"
    # larger than two of kagglehub's 1 MiB chunks, so the first attempt leaves a partial file
    with FakeKaggle(_zip_bytes(tmp_path, per_class=60, padding=3 << 20), drop_once=True) as server:
        assert main(["download", "--data-dir", str(target)]) == 0
    ranges = [r[2].get("Range") for r in server.requests if r[0] == "GET"]
    assert ranges[0] is None and ranges[-1] is not None and ranges[-1].startswith("bytes=")
    assert int(ranges[-1].removeprefix("bytes=").rstrip("-")) > 0
    assert len(list((target / "train" / "REAL").iterdir())) == 60


# --- archive import ------------------------------------------------------------------------------


def test_archive_import_train_only_with_prefix(tmp_path, capfd):
    archive = make_zip(tmp_path / "a.zip", prefix="cifake-real/", splits=("train",))
    target = tmp_path / "cifake"
    assert main(["download", "--archive", str(archive), "--data-dir", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == sorted([MARKER, "train", ".cifake-cache"])  # decoded once
    assert "the full CIFAKE release has 50,000" in capfd.readouterr().err
    assert main(["download", "--verify", "--data-dir", str(target)]) == 0


def test_force_never_deletes_a_folder_that_is_not_a_dataset(tmp_path, capfd):
    """`--force` on ~/Pictures (or a typo) once deleted every file in it without a word."""
    target = tmp_path / "Pictures"
    (target / "holiday").mkdir(parents=True)
    (target / "holiday" / "beach.jpg").write_bytes(b"precious")
    (target / "notes.txt").write_text("mine")
    archive = make_zip(tmp_path / "a.zip")
    for force in ([], ["--force"]):
        assert main(["download", "--archive", str(archive), "--data-dir", str(target), *force]) == 2
        err = capfd.readouterr().err
        assert "is not a cifake dataset folder" in err and "holiday" in err and "notes.txt" in err
        assert "--force" not in err  # the refusal must not suggest the flag that would destroy it
    assert (target / "holiday" / "beach.jpg").read_bytes() == b"precious" and (target / "notes.txt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pictures", "a.zip"]  # no leftovers either


def test_foreign_file_inside_dataset_layout_is_refused(tmp_path, capfd):
    target = tmp_path / "cifake"
    (target / "train").mkdir(parents=True)
    (target / "train" / "x.txt").write_text("mine")
    archive = make_zip(tmp_path / "a.zip")
    assert main(["download", "--archive", str(archive), "--data-dir", str(target), "--force"]) == 2
    assert "train/x.txt" in capfd.readouterr().err
    assert (target / "train" / "x.txt").read_text() == "mine"


def test_incomplete_dataset_needs_force_then_is_replaced(tmp_path, capfd):
    target = tmp_path / "cifake"
    (target / "train" / "REAL").mkdir(parents=True)
    (target / "train" / "REAL" / "old.jpg").write_bytes(b"old")
    archive = make_zip(tmp_path / "a.zip")
    assert main(["download", "--archive", str(archive), "--data-dir", str(target)]) == 2
    assert "--force" in capfd.readouterr().err
    assert main(["download", "--archive", str(archive), "--data-dir", str(target), "--force"]) == 0
    assert (target / MARKER).is_file() and not (target / "train" / "REAL" / "old.jpg").exists()
    assert not list(tmp_path.glob(".cifake.*"))


@pytest.mark.parametrize("where", ["cwd", "file"])
def test_data_dir_that_is_cwd_or_a_file_is_refused(tmp_path, monkeypatch, capfd, where):
    archive = make_zip(tmp_path / "a.zip")
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    target = "." if where == "cwd" else "keep.txt"
    assert main(["download", "--archive", str(archive), "--data-dir", target, "--force"]) == 2
    err = capfd.readouterr().err
    assert ("current folder" in err) if where == "cwd" else ("is a file" in err)
    assert (work / "keep.txt").read_text() == "x"


def test_archive_that_is_a_folder(tmp_path, capfd):
    (tmp_path / "dl.zip").mkdir()
    assert main(["download", "--archive", str(tmp_path / "dl.zip"), "--data-dir", str(tmp_path / "c")]) == 2
    assert "is a folder" in capfd.readouterr().err


def test_duplicate_targets_refused(tmp_path, capfd):
    """Two prefixes mapping to the same train/REAL/x once let a FAKE image overwrite a REAL one."""
    archive = make_zip(tmp_path / "dup.zip", splits=("train",))
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("other/train/REAL/0000.jpg", zf.read("train/FAKE/0000.jpg"))
    assert main(["download", "--archive", str(archive), "--data-dir", str(tmp_path / "c")]) == 2
    err = capfd.readouterr().err
    assert "would both be extracted to train/REAL/0000.jpg" in err
    assert not (tmp_path / "c").exists()


def test_zip_bomb_refused_from_the_directory(tmp_path, capfd):
    bomb = zip_bomb(tmp_path / "bomb.zip", 200 << 20)  # 200 MiB in ~200 KB
    assert bomb.stat().st_size < 1 << 20
    assert main(["download", "--archive", str(bomb), "--data-dir", str(tmp_path / "c")]) == 2
    err = capfd.readouterr().err
    assert "refusing" in err and "bomb.jpg" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip"]  # nothing extracted, no partial folder


def test_high_ratio_member_refused(tmp_path, capfd):
    bomb = zip_bomb(tmp_path / "ratio.zip", 8 << 20)  # under the size cap, but 1000x compressed
    assert main(["download", "--archive", str(bomb), "--data-dir", str(tmp_path / "c")]) == 2
    assert "zip bomb" in capfd.readouterr().err


def test_member_larger_than_declared_stops_while_streaming(tmp_path):
    from cifake.base.errors import UserError
    from cifake.base.limits import copy_bounded

    src = io.BytesIO(b"x" * 5000)
    dst = io.BytesIO()
    with pytest.raises(UserError, match="more data than its header declares"):
        copy_bounded(src, dst, 1000, "train/REAL/a.jpg", chunk=256)
    assert len(dst.getvalue()) <= 1000


def test_stale_leftovers_of_a_killed_import_are_removed(tmp_path, capfd):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a PID that is no longer running
    for kind in ("partial", "old"):
        junk = tmp_path / f".cifake.{kind}-{dead.pid}" / "train" / "REAL"
        junk.mkdir(parents=True)
        (junk / "a.jpg").write_bytes(b"x" * 1000)
    alive = tmp_path / f".cifake.partial-{os.getppid()}"  # a running process: its folder is left alone
    alive.mkdir()
    (tmp_path / "cifake").mkdir()
    archive = make_zip(tmp_path / "a.zip")
    assert main(["download", "--archive", str(archive), "--data-dir", str(tmp_path / "cifake")]) == 0
    err = capfd.readouterr().err
    assert err.count("left by an import that was killed") == 2
    assert sorted(p.name for p in tmp_path.glob(".cifake.*")) == [alive.name]


def test_killed_between_renames_restores_the_old_dataset(tmp_path, capfd):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = tmp_path / f".cifake.old-{dead.pid}"
    (old / "train" / "REAL").mkdir(parents=True)
    (old / MARKER).write_text("{}")
    assert main(["download", "--data-dir", str(tmp_path / "cifake")]) == 0  # complete again: nothing to fetch
    assert "restored" in capfd.readouterr().err and (tmp_path / "cifake" / MARKER).is_file()


def test_zip_slip_refused(tmp_path, capfd):
    archive = make_zip(tmp_path / "evil.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../../escaped.jpg", b"x")
    target = tmp_path / "out" / "cifake"
    assert main(["download", "--archive", str(archive), "--data-dir", str(target)]) == 2
    assert "would be written outside" in capfd.readouterr().err
    assert not target.exists() and not (tmp_path / "escaped.jpg").exists()


def test_absolute_member_refused(tmp_path):
    archive = make_zip(tmp_path / "abs.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("/etc/cifake-evil.jpg", b"x")
    assert main(["download", "--archive", str(archive), "--data-dir", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()


def test_truncated_archive(tmp_path, capfd):
    archive = make_zip(tmp_path / "full.zip")
    data = archive.read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["download", "--archive", str(cut), "--data-dir", str(tmp_path / "c")]) == 2
    assert "not a readable zip" in capfd.readouterr().err
    assert not (tmp_path / "c").exists()


def test_corrupt_member_leaves_nothing(tmp_path, capfd):
    archive = make_zip(tmp_path / "ok.zip")
    data = bytearray(archive.read_bytes())
    pos = data.find(b"JFIF") + 200  # inside the first stored JPEG: its CRC no longer matches
    data[pos : pos + 50] = b"\0" * 50
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    assert main(["download", "--archive", str(bad), "--data-dir", str(tmp_path / "c")]) == 2
    assert "corrupt" in capfd.readouterr().err
    assert not (tmp_path / "c").exists()
    assert not list(tmp_path.glob(".c.partial-*"))


def test_wrong_layout(tmp_path, capfd):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images/cat.jpg", b"x")
    assert main(["download", "--archive", str(archive), "--data-dir", str(tmp_path / "c")]) == 2
    assert "no train/REAL" in capfd.readouterr().err


def test_verify_lists_problems(tmp_path, capfd):
    archive = make_zip(tmp_path / "a.zip")
    target = tmp_path / "c"
    assert main(["download", "--archive", str(archive), "--data-dir", str(target)]) == 0
    broken = target / "train" / "REAL" / "0000.jpg"
    broken.write_bytes(b"garbage")
    assert main(["download", "--verify", "--data-dir", str(target)]) == 2
    out = capfd.readouterr().out
    assert f"ERROR {broken}: does not decode" in out
    errors, _ = verify(target)
    assert len(errors) == 1


def test_verify_reports_non_utf8_names_without_crashing(tmp_path, capfd):
    archive = make_zip(tmp_path / "a.zip", splits=("train",))
    target = tmp_path / "c"
    assert main(["download", "--archive", str(archive), "--data-dir", str(target)]) == 0
    odd = os.path.join(os.fsencode(target / "train" / "REAL"), b"bad\xff.jpg")
    with open(odd, "wb") as f:
        f.write(b"not a jpeg")
    assert main(["download", "--verify", "--data-dir", str(target)]) == 2
    assert "bad\\xff.jpg: does not decode" in capfd.readouterr().out
