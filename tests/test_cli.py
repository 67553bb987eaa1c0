"""CLI: instant help, exit-code policy, one-line errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cifake import __version__
from cifake.cli import main
from cifake.commands import NAMES

SUBCOMMANDS = NAMES  # the one list the parser is built from


def test_help_does_not_import_tensorflow():
    code = f"import sys; from cifake.cli import main; main(['--help']); [main([s, '--help']) for s in {SUBCOMMANDS!r}]; print('TF' if 'tensorflow' in sys.modules else 'NO-TF')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("NO-TF")


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_sub_help_has_example_and_labels(sub, capsys):
    assert main([sub, "--help"]) == 0
    out = capsys.readouterr().out
    assert "example:" in out
    assert "FAKE = 1" in out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_unknown_subcommand(capsys):
    assert main(["trian"]) == 2
    assert "invalid choice: 'trian'" in capsys.readouterr().err


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["config", "train.epoch=3"], "Did you mean 'train.epochs'?"),
        (["config", "train.epochs=-1"], "train.epochs: got -1"),
        (["config", "train.epochs=abc"], "train.epochs: got 'abc'"),
        (["train", "train.epochs=abc"], "train.epochs: got 'abc'"),
        (["config", "--config", "missing.yaml"], "config file not found: missing.yaml"),
    ],
)
def test_user_errors_exit_2_one_line(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in _one_line_error(capsys)


def test_yaml_not_mapping_and_syntax_error(tmp_path, capsys):
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "must be a mapping" in _one_line_error(capsys)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train:\n  epochs: [3\n")
    assert main(["train", "--config", str(broken)]) == 2
    line = _one_line_error(capsys)
    assert f"{broken}:3:" in line and "YAML syntax error" in line


def test_debug_shows_traceback(capsys):
    assert main(["--debug", "config", "train.epochs=-1"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_overrides_after_options(tmp_path, capsys):
    assert (
        main(
            [
                "config",
                "train.epochs=4",
                "--config",
                str(Path(__file__).parents[1] / "configs" / "smoke.yaml"),
                "train.lr=1e-3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "epochs: 4" in out and "lr: 0.001" in out


def test_config_output_loads_back(tmp_path, capsys):
    assert main(["config", "model.filters=[8, 16]", "train.lr=5e-4"]) == 0
    first = capsys.readouterr().out
    path = tmp_path / "resolved.yaml"
    path.write_text(first)
    assert main(["config", "--config", str(path)]) == 0
    assert capsys.readouterr().out == first


def test_missing_dataset_exit_2(tmp_path, capsys):
    assert main(["train", f"data.dir={tmp_path / 'none'}", f"train.runs_dir={tmp_path / 'runs'}"]) == 2
    line = _one_line_error(capsys)
    assert "missing folder" in line and "cifake download" in line
    assert not (tmp_path / "runs").exists()


def test_unexpected_error_exit_1(monkeypatch, capsys):
    import cifake.commands.config as command

    def boom(args):
        raise RuntimeError("kaput")

    monkeypatch.setattr(command, "run", boom)
    assert main(["config"]) == 1
    assert "unexpected error: RuntimeError: kaput" in capsys.readouterr().err


def test_keyboard_interrupt_exit_130(monkeypatch):
    import cifake.commands.config as command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "run", interrupted)
    assert main(["config"]) == 130


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["predict", "x.jpg", "--threshold", "2"], "expected a probability between 0 and 1"),
        (["evaluate", "m.keras", "--batch-size", "0"], "expected a positive integer"),
        (["serve", "--max-mb", "0"], "expected a positive, finite number"),
        (["serve", "--port", "70000"], "expected a port number"),
        (["eda", "--samples", "0"], "expected a positive integer"),
    ],
)
def test_bad_option_values_exit_2(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


def test_options_are_not_matched_by_prefix(capsys):
    """A stray '--d' (a typo, or a file name) is an error, never --debug or another option by abbreviation."""
    assert main(["config", "--d"]) == 2
    assert "unrecognized arguments: --d" in capsys.readouterr().err
