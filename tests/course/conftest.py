"""Helpers for the course tests: run a notebook headless in a private $SANDBOX_DIR."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from learner import cell_text  # noqa: F401 - the course tests import it from here

ROOT = Path(__file__).resolve().parents[2]


def run_notebook(path: Path, state: Path, *, skip_tag: str | None = None, timeout: int = 180,
                 extra: list[str] | None = None,
                 ) -> tuple[nbformat.NotebookNode, CellExecutionError | None]:
    """Execute ``path`` top to bottom with SANDBOX_DIR=state; return (notebook, error or None).

    ``extra``: code cells appended after the last one (e.g. press the clean-up button: its
    widget is ``_``). The kernel inherits SANDBOX_DIR from this process's environment."""
    old = os.environ.get("SANDBOX_DIR")
    os.environ["SANDBOX_DIR"] = str(state)
    nb = nbformat.read(path, as_version=4)
    for src in extra or []:
        nb.cells.append(nbformat.v4.new_code_cell(src))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            skip_cells_with_tag=skip_tag or "skip-execution")
    try:
        client.execute()
        return nb, None
    except CellExecutionError as e:
        return nb, e
    finally:
        if old is None:
            os.environ.pop("SANDBOX_DIR", None)
        else:
            os.environ["SANDBOX_DIR"] = old


def failing_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The cell whose output holds the error."""
    for c in nb.cells:
        if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.get("outputs", [])):
            return c
    return None


@pytest.fixture
def lab_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private SANDBOX_DIR for one lab run; whatever the labs left is reset at the end."""
    from sandbox.course import labs
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("SANDBOX_DIR", str(state))
    yield state
    for lab in labs.discover():
        labs.reset(lab.number)
