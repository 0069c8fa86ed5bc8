"""Write every lab's student notebook, ``labs/NN-slug/lab.ipynb``, from its module.

    .venv/bin/python labs/make_labs.py          # or: make labs

Each lab is one module, ``sandbox/course/labs/labN.py``: its notebook cells, checks and reset
together (see sandbox/course/labs/__init__.py). This script only writes the student builds;
reference solutions are not kept beside them — ``sandbox lab solution N`` writes one on request.
``tests/course/test_labs.py`` fails when a notebook here is stale.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nbformat  # noqa: E402

from sandbox.course import labs  # noqa: E402


def main() -> None:
    for lab in labs.discover(Path(__file__).resolve().parent):
        lab.path.mkdir(parents=True, exist_ok=True)
        nbformat.write(labs.student_notebook(lab.number), lab.student)
        print("wrote", lab.student)


if __name__ == "__main__":
    main()
