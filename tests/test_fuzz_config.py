"""Fuzz `cifake config` with random YAML configs and override strings (hypothesis).

Whatever arrives, the command must exit 0 or 2 (never 1), print no traceback, and write nothing.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cifake.cli import main
from cifake.config import all_keys

from .conftest import laughs_yaml

KEYS = all_keys()
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=10**300, max_value=10**400),  # overflows a float
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["relu", "cosine", "adamw", "small_cnn", "1e-3", ".inf", ".nan", "~", "[]", "../x", "a/b"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
key_names = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(KEYS).map(lambda k: k + "x"),
    st.text(max_size=20),
    st.sampled_from(["data", "train", "model", "augment", "", ".", "train.", ".epochs"]),
)


@st.composite
def nasty_yaml(draw) -> str:
    """Structures that once cost minutes, gigabytes or a traceback: deep nesting, alias chains, recursion."""
    kind = draw(st.sampled_from(["deep", "laughs", "recursive", "bigint"]))
    n = draw(st.integers(min_value=1, max_value=1200 if kind == "deep" else 12))
    if kind == "deep":
        return "[" * n + "]" * n
    if kind == "laughs":
        return laughs_yaml(n)
    if kind == "recursive":
        return "&r [*r]" if n % 2 else "train: &r {epochs: *r}"
    return "1" + "0" * (300 + 10 * n)


@st.composite
def configs(draw) -> str:
    """A YAML document: mostly real sections and keys with random values; sometimes raw text."""
    if draw(st.booleans()):
        doc: dict = {}
        for key in draw(st.lists(key_names, max_size=8)):
            section, _, name = key.partition(".")
            if name and draw(st.booleans()):
                doc.setdefault(section, {})
                if isinstance(doc[section], dict):
                    doc[section][name] = draw(values)
            else:
                doc[key] = draw(values)
        return yaml.safe_dump(doc, allow_unicode=True)
    return draw(
        st.one_of(
            st.text(max_size=200),
            st.text(alphabet="&*[]{}:,-!|>'\"#%@`\n abc123.", max_size=200),
            nasty_yaml(),
            nasty_yaml().map(lambda y: "train:\n  lr: " + y.replace("\n", " ")),
        )
    )


@st.composite
def overrides(draw) -> str:
    if draw(st.booleans()):
        return draw(st.text(max_size=60))
    raw = draw(
        st.one_of(
            st.text(alphabet="&*[]{}:,-!|>'\"#.0123456789eEinfa \n", max_size=40),
            values.map(str),
            nasty_yaml().filter(lambda y: "\n" not in y),
        )
    )
    return f"{draw(key_names)}={raw}"


def _run(argv: list[str]) -> tuple[int, str, list[str]]:
    """Run the CLI in an empty temporary folder; return (exit code, stderr, files left there)."""
    with tempfile.TemporaryDirectory() as tmp:
        before = os.getcwd()
        os.chdir(tmp)
        err, out = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                code = main(argv)
        finally:
            os.chdir(before)
        left = sorted(str(p.relative_to(tmp)) for p in Path(tmp).rglob("*") if p.name != "cfg.yaml")
    return code, err.getvalue(), left


def _check(code: int, err: str, left: list[str], debug: bool = False) -> None:
    assert code in (0, 2), f"exit {code}: {err}"
    assert "unexpected error" not in err, err
    assert debug or "Traceback" not in err, err  # --debug asks for the traceback (hypothesis found it)
    assert left == [], f"wrote {left}"


@SETTINGS
@given(st.lists(overrides(), max_size=4))
def test_random_overrides(ovs):
    _check(*_run(["config", *ovs]), debug="--debug" in ovs)


@SETTINGS
@given(configs(), st.lists(overrides(), max_size=2))
def test_random_config_files(text, ovs):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8", errors="surrogatepass") as f:
        f.write(text)
    try:
        _check(*_run(["config", "--config", f.name, *ovs]), debug="--debug" in ovs)
    finally:
        os.unlink(f.name)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_as_config(data):
    with tempfile.NamedTemporaryFile("wb", suffix=".yaml", delete=False) as f:
        f.write(data)
    try:
        _check(*_run(["config", "--config", f.name]))
    finally:
        os.unlink(f.name)
