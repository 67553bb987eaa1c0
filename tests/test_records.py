"""The records that say what ships and what was renamed, and the one file writer."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from cifake import config
from cifake.base import files, renames
from cifake.models import presets
from cifake.models.detector import resolve_checkpoint


def test_every_preset_ships_its_file_and_card_and_resolves_by_name():
    for p in presets.PRESETS.values():
        assert p.path.is_file() and p.card_path.is_file(), p
        assert isinstance(json.loads(p.card_path.read_text()), dict)
        assert resolve_checkpoint(p.name) == p.path
    assert presets.names()[: len(presets.PRESETS)] == list(presets.PRESETS)


def test_every_old_name_points_at_something_that_exists_and_warns_once(caplog):
    keys = {k for s in config.SECTIONS.values() for k in (f.name for f in dataclasses.fields(s))}
    for r in renames.RENAMED:
        if r.where == "model":
            assert r.new in presets.PRESETS and r.old in presets.names()
        else:
            section, _, key = r.where.partition(".")
            assert key in keys
            field = next(f for f in dataclasses.fields(config.SECTIONS[section]) if f.name == key)
            choices = field.metadata.get("choices", ())
            assert r.old in choices and r.new in choices, r
    renames.forget()
    with caplog.at_level(logging.WARNING, logger="cifake"):
        cfg = config.load_config(None, ["train.mixed_precision=on"])
        config.load_config(None, ["train.mixed_precision=on"])
    assert cfg.train.mixed_precision == "on"  # still works for the release
    said = [r.getMessage() for r in caplog.records if "mixed_precision: on" in r.getMessage()]
    assert len(said) == 1 and "removed in the next release: use 'auto'" in said[0]


def test_atomic_open_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "scores.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), files.atomic_open(target) as f:
        f.write("half of a new file")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]
    files.atomic_write_json(target, {"x": float("nan"), "y": [1.5, float("inf")]})
    assert json.loads(target.read_text()) == {"x": None, "y": [1.5, None]}
