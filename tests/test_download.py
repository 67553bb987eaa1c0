"""cifake download: the real kagglehub/kagglesdk client against a stand-in server, and archive import."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from cifake.cli import main
from cifake.download import MARKER, verify

from .conftest import make_zip
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
    assert sorted(p.name for p in target.iterdir()) == sorted([MARKER, "train"])
    assert "the full CIFAKE release has 50,000" in capfd.readouterr().err
    assert main(["download", "--verify", "--data-dir", str(target)]) == 0


def test_existing_foreign_folder_needs_force(tmp_path, capfd):
    target = tmp_path / "cifake"
    (target / "train").mkdir(parents=True)
    (target / "train" / "x.txt").write_text("mine")
    archive = make_zip(tmp_path / "a.zip")
    assert main(["download", "--archive", str(archive), "--data-dir", str(target)]) == 2
    assert "--force" in capfd.readouterr().err
    assert main(["download", "--archive", str(archive), "--data-dir", str(target), "--force"]) == 0
    assert (target / MARKER).is_file() and not (target / "train" / "x.txt").exists()


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
