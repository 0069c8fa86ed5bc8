"""A learner in a real kernel: one notebook, its cells run one at a time (the course tests)."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def cell_text(cell: nbformat.NotebookNode) -> str:
    """Everything a cell showed, as text (streams, text/plain results, errors)."""
    parts = []
    for o in cell.get("outputs", []):
        parts.append(o.get("text", ""))
        parts.append(str(o.get("data", {}).get("text/plain", "")))
        if o.get("output_type") == "error":
            parts.append(f"{o.get('ename')}: {o.get('evalue')}")
    return "".join(parts)


class Learner:
    """One kernel, one notebook, cells run one at a time."""

    def __init__(self, nb: nbformat.NotebookNode, path: Path, state: Path) -> None:
        self.nb = nb
        self.client = NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(path.parent)}})
        self.env = {**os.environ, "SANDBOX_DIR": str(state)}
        self.env.pop("SANDBOX_STATIC", None)

    def __enter__(self) -> "Learner":
        self._ctx = self.client.setup_kernel(env=self.env)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)

    def run(self, cell: nbformat.NotebookNode) -> str:
        if cell not in self.nb.cells:
            self.nb.cells.append(cell)
        self.client.execute_cell(cell, self.nb.cells.index(cell))
        return cell_text(cell)

    def run_code(self, src: str) -> str:
        return self.run(nbformat.v4.new_code_cell(src))
