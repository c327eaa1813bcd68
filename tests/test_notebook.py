"""examples/quickstart.ipynb: stored without outputs, and it runs top to bottom.

It is executed by nbclient in a kernel of this interpreter (ipykernel), offline, on
the embedded Whisper default; the checks read what its cells printed and displayed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs the test extra")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def _output_text(cell: dict[str, object]) -> str:
    parts = []
    for output in cell.get("outputs", []):  # type: ignore[attr-defined]
        parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts.append(data.get("text/markdown", "") or data.get("text/plain", ""))
    return "".join(parts)


def test_the_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == []
        assert cell.execution_count is None
    assert "widgets" not in notebook.metadata


@pytest.mark.whisper
@pytest.mark.lhotse
@pytest.mark.slow
def test_the_notebook_runs_offline() -> None:
    nbclient = pytest.importorskip("nbclient", reason="needs the test extra")
    pytest.importorskip("ipykernel", reason="needs the test extra")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )

    client.execute()  # raises CellExecutionError naming the cell that failed

    text = "\n".join(_output_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "2 transcribed, 0 skipped, 1 failed" in text
    assert "| arctic | 4.00 | and you always want to see it in the superlative degree. |" in text
    assert "| broken | | **failed:** AudioDecodeError" in text
    assert re.search(r"transcribing: .* audio \[.*files", text), text  # the progress bar
    start = re.search(r"arctic-start +offset +([\d.]+) s +duration +([\d.]+) s +'(.*)'", text)
    end = re.search(r"arctic-end +offset +([\d.]+) s +duration +([\d.]+) s +'(.*)'", text)
    assert start is not None, text
    assert end is not None, text
    assert float(start[1]) == 0.0
    assert float(end[1]) == pytest.approx(float(start[2]), abs=0.01)  # the cut point
    assert float(start[2]) + float(end[2]) == pytest.approx(4.0, abs=0.01)
    assert "superlative" in end[3]
    assert "superlative" not in start[3]  # each cut heard over its own span only
