"""examples/quickstart.ipynb runs top to bottom (on a generated dataset), so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_quickstart_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="the dev extra installs nbformat and nbclient")
    nbclient = pytest.importorskip("nbclient", reason="the dev extra installs nbformat and nbclient")
    data = make_dataset(tmp_path / "data", per_class=40)
    monkeypatch.setenv("CIFAKE_DATA", str(data))
    monkeypatch.setenv("CIFAKE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFAKE_FRACTION", "1.0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(REPO / "examples" / "quickstart.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO / "examples")}}
    ).execute()
    text = "\n".join(
        o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    )
    assert "P(FAKE)" in text and "validation accuracy" in text
    assert (tmp_path / "runs" / "smoke" / "metrics.json").is_file()
    assert not list((REPO / "examples").glob("*.png"))  # the notebook writes nothing beside itself
