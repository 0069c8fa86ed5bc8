"""Every lab: one module holds its notebook, checks and reset; the student notebook in git is
what the module builds (a test fails when it is stale); the reference solution is nowhere in the
tree and runs headless with every check passing (lab 4 here; every lab, student then solution
cells, in test_journey.py).

Labs are found from the modules; the suite fails when it finds none (teaching.md: a
material-test runner must fail when it collects zero items).
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from waiting import eventually

from sandbox.course import labs, progress

from .conftest import ROOT, cell_text, run_notebook

LABS = labs.discover(ROOT / "labs")


def _machine() -> tuple[set[str], set[str]]:
    netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    return netns, set(os.listdir("/sys/class/net"))


def test_labs_were_collected() -> None:
    assert len(LABS) >= 6, f"expected at least six lab modules, found {len(LABS)}"
    folders = sorted(p.name for p in (ROOT / "labs").glob("[0-9][0-9]-*") if p.is_dir())
    assert folders == [lab.folder for lab in LABS], "every labs/NN-slug folder has a lab module"


@pytest.mark.parametrize("lab", LABS, ids=[l.folder for l in LABS])
def test_student_notebook_in_git_is_not_stale(lab: labs.Lab) -> None:
    built = nbformat.writes(labs.student_notebook(lab.number)) + "\n"
    assert lab.student.read_text() == built, (
        f"{lab.student.relative_to(ROOT)} is stale: run `.venv/bin/python labs/make_labs.py`")


def test_no_solution_beside_the_student_notebooks() -> None:
    tracked = [p for p in (ROOT / "labs").rglob("*.ipynb") if p.name != "lab.ipynb"]
    ignored = {p for p in tracked if p.name == "solution.ipynb"}   # written on request
    assert set(tracked) == ignored, f"unexpected notebooks under labs/: {sorted(set(tracked) - ignored)}"
    assert not any((ROOT / "labs").glob("*/solution/"))


@pytest.mark.parametrize("lab", LABS, ids=[l.folder for l in LABS])
def test_student_and_solution_differ_only_in_todo_cells(lab: labs.Lab) -> None:
    student = labs.student_notebook(lab.number)
    solution = labs.solution_notebook(lab.number)
    assert len(student.cells) == len(solution.cells)
    todo = 0
    for s, r in zip(student.cells, solution.cells):
        tags = s.metadata.get("tags", [])
        if "todo" in tags:
            todo += 1
            assert "solution" in r.metadata.get("tags", []) and s.source != r.source
        else:
            assert s.source == r.source and tags == r.metadata.get("tags", [])
        if s.cell_type == "code":
            assert not s.outputs and not r.outputs, "labs are stored without outputs"
    assert todo >= 1
    tags = [t for c in student.cells for t in c.metadata.get("tags", [])]
    assert "check" in tags and tags[-1] == "cleanup", "a check cell, and the clean-up offer last"
    assert "labs.reset(" not in "".join(c.source for c in student.cells), (
        "no cell resets the lab when the notebook is run top to bottom")


@pytest.mark.parametrize("lab", LABS, ids=[l.folder for l in LABS])
def test_module_declares_what_the_framework_needs(lab: labs.Lab) -> None:
    mod = lab.module()
    assert mod.CHECKS and len(set(mod.CHECKS)) == len(mod.CHECKS)
    assert mod.STUDENT_HINT and callable(mod.checks) and callable(mod.mistake)
    assert any((ROOT / "notebooks").glob(f"{lab.follows}-*.ipynb")), lab.follows


def test_report_lists_every_check_when_a_gate_stops_the_run(sandbox_dir: Path) -> None:
    """Lab 1's first gate fails (half the predictions given): the other three checks are
    reported as not checked yet."""
    ws = labs.workspace(1)
    ws.answer("predictions", {"rename": False, "content": True, "mtime": True})
    report = labs.run_checks(1)
    assert [r.name for r in report.results] == labs.get(1).checks
    assert [r.kind for r in report.results] == ["check", "pending", "pending", "pending"]
    assert report.headline() == "lab 1: 0 of 4 checks pass (1 fails, 3 not checked yet)"
    assert "missing: label, rebuild, recompress" in str(report)
    assert "not checked yet" in str(report) and not report.ok
    assert progress.lab(1)["passed"] == 0 and progress.lab(1)["total"] == 4


def test_check_cell_reports_and_does_not_raise(sandbox_dir: Path) -> None:
    report = labs.check(3)           # no workspace at all
    assert not report.ok and report.total == len(labs.get(3).checks)
    assert "run the lab's first cells" in str(report)
    html = report._repr_html_()
    assert "sandbox-lab-fail" in html and html.count("<tr>") == report.total


@pytest.mark.root
@pytest.mark.slow
def test_a_solution_runs_top_to_bottom_and_its_button_cleans_up(lab_state: Path,
                                                               tmp_path: Path) -> None:
    """The solution as `sandbox lab solution` writes it runs with Run All (lab 4: namespaces,
    a veth pair, a ping); every lab's student + solution cells run in test_journey.py."""
    before = _machine()
    path = labs.write_solution(4, tmp_path)
    nb, err = run_notebook(path, lab_state, extra=["_.button.click()", "print(_.output.value)"])
    assert err is None, f"lab 4 solution failed:\n{err}"
    check = next(c for c in nb.cells if "check" in c.metadata.get("tags", []))
    assert "all checks pass (7 of 7)" in cell_text(check)
    assert f"removed {lab_state / 'labs' / '04'}" in cell_text(nb.cells[-1])
    eventually(lambda: {n for n in _machine()[1] - before[1] if n.startswith("sbx")},
               lambda left: not left, what="lab 4's host links gone")
    assert {n for n in _machine()[0] - before[0] if n.startswith("sbx-l4-")} == set()
