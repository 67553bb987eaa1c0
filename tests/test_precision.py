"""train.mixed_precision: the policy chosen from the hardware, and what a bf16-trained model keeps."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from cifake.base.tfutil import cpu_flags
from cifake.cli import main
from cifake.training.devices import choose_precision

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]
XEON = "fpu vme sse4_2 avx2 avx512f avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8"  # Sapphire Rapids
EPYC = "fpu vme sse4_2 avx2 fma"  # this project's AVX2-only machine
CPUINFO = "processor\t: 0\nmodel name\t: test CPU\nflags\t\t: {}\n\nprocessor\t: 1\nflags\t\t: {}\n"


@pytest.mark.parametrize(
    ("setting", "caps", "flags", "policy", "why"),
    [
        ("auto", [], XEON, "mixed_bfloat16", "amx_bf16/avx512_bf16"),
        ("auto", [], "avx2 avx512_bf16", "mixed_bfloat16", "CPU has avx512_bf16"),
        ("auto", [], EPYC, "float32", "without AMX-BF16"),
        ("auto", [(8, 0)], EPYC, "mixed_float16", "capability 8.0 >= 7.0"),
        ("auto", [(8, 0), (6, 1)], XEON, "float32", "6.1 < 7.0"),  # the weakest GPU decides
        ("off", [], XEON, "float32", "off"),
        ("bf16", [], EPYC, "mixed_bfloat16", "emulated, slow"),
        ("bf16", [], XEON, "mixed_bfloat16", "CPU has amx_bf16"),
        ("fp16", [], XEON, "mixed_float16", "no GPU: emulated"),
        ("on", [(7, 5)], EPYC, "mixed_float16", "mixed_precision=on"),
        ("on", [], XEON, "float32", "no GPU here"),
    ],
)
def test_policy_from_faked_hardware(setting, caps, flags, policy, why, tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAKE_CPU_BF16", raising=False)  # these cases read the fake cpuinfo as it is
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO.format(flags, flags))
    chosen, reason = choose_precision(setting, caps, cpu_flags(str(info)))
    assert chosen == policy and why in reason


def test_cpu_flags_of_a_missing_file_is_empty(tmp_path):
    assert cpu_flags(str(tmp_path / "none")) == set()


def test_bf16_run_keeps_the_model_contract(tmp_path, capsys):
    """Forced bf16 (emulated on a CPU without the units): the devices line says so, and best.keras still
    returns float32 probabilities when loaded with safe_mode under the float32 policy."""
    data = make_dataset(tmp_path / "cifake", per_class=40)
    args = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data}"]
    args += [f"train.runs_dir={tmp_path / 'runs'}", "data.fraction=1.0", "train.epochs=1", "train.batch_size=16"]
    assert main([*args, "train.mixed_precision=bf16", "--name", "b"]) == 0
    assert keras.mixed_precision.global_policy().name == "float32"  # the run's policy does not leak to the caller
    assert "mixed_bfloat16 (train.mixed_precision=bf16" in capsys.readouterr().out
    model = keras.models.load_model(tmp_path / "runs" / "b" / "best.keras", compile=False, safe_mode=True)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}  # best.keras scores in float32 anywhere
    last = keras.models.load_model(tmp_path / "runs" / "b" / "last.keras", compile=False, safe_mode=True)
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in last.layers}  # resume keeps the run's precision
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), last.get_weights(), strict=True))
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("float32")
    p = model(x, training=False)
    assert p.dtype == "float32" and p.shape == (8, 1)
    assert np.all((np.asarray(p) >= 0) & (np.asarray(p) <= 1))
    assert all(w.dtype == "float32" for w in model.weights)  # variables stay float32 under mixed policies


@pytest.mark.parametrize(("value", "policy"), [("1", "mixed_bfloat16"), ("0", "float32")])
def test_the_bf16_switch_makes_auto_act_as_on_the_other_kind_of_cpu(monkeypatch, tmp_path, value, policy):
    """CIFAKE_CPU_BF16 lets the suite run as if on a CPU with (1) or without (0) bfloat16 units."""
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO.format("avx2 avx512_bf16 amx_bf16" if value == "0" else "avx2", "avx2"))
    monkeypatch.setenv("CIFAKE_CPU_BF16", value)
    assert choose_precision("auto", [], cpu_flags(str(info)))[0] == policy


def test_on_and_off_are_words_not_booleans(tmp_path):
    from cifake.config import load_config

    assert load_config(None, ["train.mixed_precision=off"]).train.mixed_precision == "off"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  mixed_precision: on\n")  # YAML 1.1 would make this True
    assert load_config(recipe, []).train.mixed_precision == "on"
