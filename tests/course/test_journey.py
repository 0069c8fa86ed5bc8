"""A learner's journey, from a fresh state directory, driven cell by cell in a real kernel.

Every lab: open the student notebook and run it down to its check, which reports every check,
failing ones with the hint the lab promises; then put the reference solution's cells in place of
the TODO cells, restart the kernel and run down to the check again — on top of what the first
attempt left — and it passes; `sandbox lab list` shows
the lab passed, and `sandbox lab check N` in a terminal agrees; the lab module's `mistake`
damages the state as a learner might and the terminal check names it; the clean-up button
removes everything the lab made (no netns, no link, no workspace, no pod).

Every notebook's self-check, answered wrongly and rightly by a learner in a kernel, is in
tests/notebooks/test_notebooks.py (each notebook runs once in the suite, there).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from learner import Learner
from waiting import eventually

from sandbox.course import labs

ROOT = Path(__file__).resolve().parents[2]
LABS = labs.discover(ROOT / "labs")
pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def fresh_state():
    state = Path(tempfile.mkdtemp(prefix="sbx-journey-"))
    yield state
    for lab in LABS:
        subprocess.run([sys.executable, "-m", "sandbox", "--dir", str(state), "lab", "reset",
                        str(lab.number)], capture_output=True, timeout=120)
    from sandbox._sys import mountinfo
    mountinfo.umount_below(state)
    shutil.rmtree(state, ignore_errors=True)


def _lab_line(state: Path, n: int) -> str:
    """Lab ``n``'s line of `sandbox lab list`."""
    cp = subprocess.run([sys.executable, "-m", "sandbox", "--dir", str(state), "lab", "list"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    return next(l for l in cp.stdout.splitlines() if l.startswith(f"{n:>2}  "))


def _sandbox(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandbox", "--dir", str(state), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("lab", LABS, ids=[l.folder for l in LABS])
def test_a_learner_does_the_lab(lab: labs.Lab, fresh_state: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    student = nbformat.read(lab.student, as_version=4)
    solution = labs.solution_notebook(lab.number)
    tags = [c.metadata.get("tags", []) for c in student.cells]
    check_at = next(i for i, t in enumerate(tags) if "check" in t)
    cleanup = student.cells[-1]
    assert "cleanup" in cleanup.metadata.get("tags", [])
    first_todo = next(i for i, t in enumerate(tags) if "todo" in t)
    n = len(lab.checks)
    assert f"not started (0/{n})" in _lab_line(fresh_state, lab.number)
    with Learner(student, lab.student, fresh_state) as me:
        for cell in student.cells[:check_at]:
            me.run(cell)                                   # TODO cells as they are
        report = me.run(student.cells[check_at])           # every check reported, with hints
        assert f"of {n} checks pass" in report and "all checks pass" not in report, report
        assert lab.module().STUDENT_HINT in report and "hint:" in report
        assert report.count("\n✓ ") + report.count("\n✗ ") + report.count("\n· ") == n, report
    # the learner puts the solution's cells in place of the TODO cells, restarts the kernel and
    # runs the notebook again, on top of what the first attempt left in the workspace
    fixed = nbformat.read(lab.student, as_version=4)
    for i in range(first_todo, check_at):
        fixed.cells[i] = solution.cells[i]
    with Learner(fixed, lab.student, fresh_state) as me:
        for cell in fixed.cells[:check_at]:
            me.run(cell)
        report = me.run(fixed.cells[check_at])
        assert f"all checks pass ({n} of {n})" in report, report
        line = _lab_line(fresh_state, lab.number)
        assert f"{n}/{n} checks, today" in line and "passed" in line, line

        # the same checks from a terminal, on the state the notebook left
        cp = _sandbox(fresh_state, "lab", "check", str(lab.number))
        assert cp.returncode == 0 and "all checks pass" in cp.stdout, cp.stdout + cp.stderr
        # a mistake learners make on the finished lab: the check says what is wrong (exit 1)
        monkeypatch.setenv("SANDBOX_DIR", str(fresh_state))
        ws = labs.Workspace(lab.number, create=False)
        names = ws.names()
        expected = lab.module().mistake(ws)
        cp = _sandbox(fresh_state, "lab", "check", str(lab.number))
        assert cp.returncode == 1 and expected in cp.stdout, cp.stdout + cp.stderr

        me.run(cleanup)                                    # the clean-up button is shown…
        done = me.run_code("_.button.click(); print(_.output.value)")   # …and pressed
        assert f"removed {fresh_state / 'labs' / f'{lab.number:02d}'}" in done
    assert not (fresh_state / "labs" / f"{lab.number:02d}").exists()
    for name in names.values():
        assert not Path("/run/netns", name).exists(), f"{name} survived the reset"
    # host ends of veths whose peers lived in a deleted netns go when the kernel frees it
    # (only this lab's: its names carry the tags it was handed; other sessions share the host)
    tags = {v.split("-")[2] for v in names.values()}
    eventually(lambda: [l for l in os.listdir("/sys/class/net")
                        if any(l.startswith("sbx" + t) for t in tags)],
               lambda left: not left, what="the lab's host links gone")
    cp = _sandbox(fresh_state, "lab", "reset", str(lab.number))
    assert cp.returncode == 0 and "nothing to remove" in cp.stdout
    assert "(passed today" in _lab_line(fresh_state, lab.number)   # the mistake came after: passed once
    if lab.number == 6:
        from sandbox.pod import stage0 as pod
        assert pod.list_pods() == []
