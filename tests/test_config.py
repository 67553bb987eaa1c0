from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cifake.base.errors import ConfigError, UserError
from cifake.config import Config, all_keys, config_from_dict, load_config, reference

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_defaults_and_name_from_file(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  epochs: 3\n"))
    assert cfg.train.epochs == 3
    assert cfg.train.batch_size == Config().train.batch_size
    assert cfg.train.name == "cfg"  # the file's stem


def test_precedence_defaults_file_overrides(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 3\n  lr: 0.01\n")
    cfg = load_config(path, ["train.epochs=7", "model.filters=[8, 16]"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.model.filters) == (7, 0.01, [8, 16])


@pytest.mark.parametrize("text", ["1e-3", "1.0e-3", "0.001", ".001"])
def test_scientific_floats_accepted(text, tmp_path):
    assert load_config(None, [f"train.lr={text}"]).train.lr == pytest.approx(1e-3)
    assert load_config(write(tmp_path, f"train:\n  lr: {text}\n")).train.lr == pytest.approx(1e-3)


def test_int_accepted_as_float():
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0


def test_unknown_key_suggests():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["train.epoch=3"])
    assert "'train.epoch' is not a valid key. Did you mean 'train.epochs'?" in str(e.value)


def test_unknown_section_in_file(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("'trian.epochs' is not a valid key. Did you mean 'train.epochs'")):
        load_config(write(tmp_path, "trian:\n  epochs: 3\n"))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.epochs=-1", "train.epochs: got -1; expected a value >= 1"),
        ("train.epochs=abc", "train.epochs: got 'abc' (str); expected an integer"),
        ("train.epochs=2.5", "expected an integer"),
        ("train.optimizer=adan", "expected one of adam, adamw, sgd. Did you mean 'adam'"),
        ("data.cache=maybe", "expected true or false"),
        ("model.filters=[8, -1]", "a list of positive integers"),
        ("data.val_fraction=0", "expected a value > 0"),
        ("train.epochs", "is not key=value"),
    ],
)
def test_bad_values(override, expected):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert expected in str(e.value)


def test_all_problems_reported_at_once():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["train.epochs=0", "train.lrr=1", "model.pooling=mean"])
    assert len(e.value.problems) == 3


def test_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_section_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="section 'train' must be a mapping"):
        load_config(write(tmp_path, "train: 3\n"))


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_syntax_error_has_line_number(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 3\n  lr: [1, 2\nmodel:\n  name: x\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert f"{path}:4:" in str(e.value) or f"{path}:5:" in str(e.value)
    assert "YAML syntax error" in str(e.value)


def test_yaml_round_trip():
    cfg = load_config(None, ["train.lr=2e-3", "model.dense=[64]", "train.name=x"])
    again = config_from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    cfg = load_config(path)
    assert cfg.train.name == path.stem


def test_reference_covers_every_key():
    keys = [k for k, _, _ in reference()]
    assert keys == all_keys()
    assert all(text for _, _, text in reference())


def test_readme_points_to_the_generated_key_reference():
    assert "(docs/config.md)" in (REPO / "README.md").read_text()


def test_docs_config_md_is_what_the_code_prints():
    """docs/config.md is generated: regenerate with cifake config --reference --markdown > docs/config.md."""
    from cifake.config import all_keys, reference_markdown

    page = (REPO / "docs" / "config.md").read_text()
    assert page == reference_markdown()
    assert all(f"| `{key}` |" in page for key in all_keys())


def test_one_default_recipe_with_and_without_config(capsys):
    """`cifake train` / `cifake config` without --config use configs/small_cnn.yaml, shipped in the package."""
    from pathlib import Path

    from cifake.cli import main
    from cifake.config import DEFAULT_RECIPE

    repo = Path(__file__).resolve().parents[1]
    assert DEFAULT_RECIPE.read_text() == (repo / "configs" / "small_cnn.yaml").read_text()
    assert main(["config"]) == 0
    bare = capsys.readouterr().out
    assert main(["config", "--config", str(repo / "configs" / "small_cnn.yaml")]) == 0
    assert capsys.readouterr().out == bare and "stem: whiten" in bare and "name: small_cnn" in bare
