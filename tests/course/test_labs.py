"""Every lab: the solution build runs headless and its checks pass (and the lab leaves nothing
behind); the student build (TODO cells untouched) fails *at a check cell* with a hint.

Labs are found by globbing; the suite fails when it finds none (teaching.md: a material-test
runner must fail when it collects zero items).
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from sandbox.course import labs

from .conftest import ROOT, failing_cell, run_notebook

LABS = labs.discover(ROOT / "labs")

# What the untouched student notebook must be told (the first failing check's hint).
STUDENT_HINTS = {
    1: "the manifest is not valid yet",
    2: "no hello.aci.asc yet",
    3: "write the set of files you expect",
    4: "touch` it, then bind a new netns on it",
    5: "ADD is not written yet (TODO)",
    6: "run the pod: p = pod.run(store, lab6.LAB6_APPS, detach=True)",
}


def _machine() -> tuple[set[str], set[str]]:
    netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    return netns, set(os.listdir("/sys/class/net"))


def test_labs_were_collected() -> None:
    assert len(LABS) >= 6, f"expected at least six labs under labs/, found {len(LABS)}"
    assert {lab.number for lab in LABS} == set(STUDENT_HINTS)


@pytest.mark.parametrize("lab", LABS, ids=[l.path.name for l in LABS])
def test_student_and_solution_differ_only_in_todo_cells(lab: labs.Lab) -> None:
    student = nbformat.read(lab.student, as_version=4)
    solution = nbformat.read(lab.solution, as_version=4)
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
    assert "check" in tags and tags[-1] == "cleanup", "a check cell, and cleanup last"


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS, ids=[l.path.name for l in LABS])
def test_solution_passes_its_checks(lab: labs.Lab, lab_state: Path) -> None:
    before = _machine()
    nb, err = run_notebook(lab.solution, lab_state)
    assert err is None, f"{lab.path.name} solution failed:\n{err}"
    checks = [c for c in nb.cells if "check" in c.metadata.get("tags", [])]
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                   for c in checks for o in c.outputs)
    assert "all checks pass" in text
    # the cleanup cells removed everything the lab made
    assert not (lab_state / "labs" / f"{lab.number:02d}").exists()
    after = _machine()
    assert {n for n in after[0] - before[0] if n.startswith(f"sbx-l{lab.number}-")} == set()
    assert {n for n in after[1] - before[1] if n.startswith("sbx")} == set()


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS, ids=[l.path.name for l in LABS])
def test_student_build_fails_at_a_check_with_a_hint(lab: labs.Lab, lab_state: Path) -> None:
    nb, err = run_notebook(lab.student, lab_state)
    assert err is not None, f"{lab.path.name}: the untouched student notebook passed its checks"
    cell = failing_cell(nb)
    assert cell is not None and "check" in cell.metadata.get("tags", []), (
        f"{lab.path.name}: the student build failed before its check cell:\n{err}")
    error = next(o for o in cell.outputs if o.get("output_type") == "error")
    assert error["ename"] == "CheckFailed"
    assert "hint:" in error["evalue"] and STUDENT_HINTS[lab.number] in error["evalue"], error["evalue"]
