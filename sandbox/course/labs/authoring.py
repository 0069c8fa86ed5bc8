"""How a lab module writes its notebook: cells, and the student/solution builds made from them.

A lab module (``sandbox/course/labs/labN.py``) lists its notebook as ``CELLS``, built with the
helpers below. From that one list come both builds, so they never drift apart:

* the **student** notebook, ``labs/NN-slug/lab.ipynb`` (in git; ``labs/make_labs.py`` writes
  it) — each :func:`todo` cell shows its exercise, tagged ``todo``;
* the **reference solution** — the same cells with each :func:`todo` done, tagged ``solution``.
  It is never a file in git: ``sandbox lab solution N`` writes it when a learner or an
  instructor asks (:func:`sandbox.course.labs.write_solution`).

Other tags: ``check`` (the cell that runs the lab's checks and shows every verdict; it never
raises, so "Run All" and ``jupyter nbconvert --execute`` run to the end) and ``cleanup`` (a
button that removes what the lab made; "Run All" only shows it, so ``sandbox lab check N``
still sees the finished work). Notebooks are written without outputs.
"""
from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:   # nbformat is imported only when a notebook is built
    import nbformat


class Cell(NamedTuple):
    kind: str                 # md | code | todo | check | cleanup
    source: str               # the solution's source for a todo cell
    student: str | None = None


def md(text: str) -> Cell:
    """A markdown cell."""
    return Cell("md", text.strip("\n"))


def code(src: str) -> Cell:
    """A code cell, the same in both builds."""
    return Cell("code", src.strip("\n"))


def todo(solution: str, student: str) -> Cell:
    """An exercise: ``student`` in the student build, ``solution`` in the reference solution."""
    return Cell("todo", solution.strip("\n"), student.strip("\n"))


def header(n: int, title: str, intro: str, objectives: tuple[str, ...] = (),
           follows: str = "") -> list[Cell]:
    """The title cell: what the lab is about, what you will do, what comes first, how long it
    takes (measured, docs/course-times.json), and how to work through it."""
    from sandbox.course import outline
    goals = "".join(f"- {o}\n" for o in objectives)
    goals = f"**In this lab you will**\n\n{goals}\n" if goals else ""
    nb = next((name for name in outline.NOTEBOOKS if name.startswith(f"{follows}-")), "")
    before = f"**Before this lab:** notebook [{nb}](../../notebooks/{nb}.ipynb).\n\n" if nb else ""
    t = outline.load_times().get(f"lab-{n}", {})
    took = (f"**Time:** about {t['minutes']} minutes — {outline.time_parts(t)} (docs/instructor.md, "
            "\"How the times were measured\").\n\n" if t.get("minutes") else "")
    return [md(f"# Lab {n} · {title}\n\n{intro.strip()}\n\n{goals}{before}{took}"
               "Cells marked **TODO** are yours. Run the notebook top to bottom; the check cell "
               "near the end shows every check's verdict and, for each one still failing, a hint. "
               f"Stuck in a state you cannot undo? `sandbox lab reset {n}` in a terminal, then "
               "start again. Want to compare with the reference solution? "
               f"`sandbox lab solution {n}` writes it (after you tried).")]


def check_cells(n: int) -> list[Cell]:
    """The check: its heading and the cell that runs it."""
    return [md("## Check your work\n\nThe check reads the live state (files, kernel, pod) and "
               "shows every check's verdict. From a terminal the same checks run with "
               f"`sandbox lab check {n}`."),
            Cell("check", f"labs.check({n})")]


def cleanup_cells(n: int) -> list[Cell]:
    """The offer to clean up: a button, so "Run All" leaves the finished lab for the check."""
    return [md("## Clean up (when you are done)\n\nThe button removes everything this lab made "
               "(also what a half-done run left); `sandbox lab reset "
               f"{n}` does the same from a terminal. \"Run All\" only shows the button: your work "
               "stays for `sandbox lab check` until you press it."),
            Cell("cleanup", f"from sandbox.viz.course import lab_reset_button\n\nlab_reset_button({n})")]


def footer(n: int) -> list[Cell]:
    """Check, then the clean-up offer: the end of every lab."""
    return [*check_cells(n), *cleanup_cells(n)]


def build(lab: ModuleType, solution: bool) -> "nbformat.NotebookNode":
    """The student (``solution=False``) or reference-solution notebook of a lab module."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    if solution:
        nb.metadata["sandbox"] = {"lab": lab.NUMBER, "build": "solution"}
    for kind, src, student in lab.CELLS:
        if kind == "md":
            nb.cells.append(new_markdown_cell(src))
        elif kind == "code":
            nb.cells.append(new_code_cell(src))
        elif kind == "todo":
            c = new_code_cell(src if solution else student)
            c.metadata["tags"] = ["solution"] if solution else ["todo"]
            nb.cells.append(c)
        else:
            c = new_code_cell(src)
            c.metadata["tags"] = [kind]
            nb.cells.append(c)
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    return nb
