"""`sandbox lab list|check|reset|solution` from a shell. (Each lab's terminal check on the state
its notebook left, the module's `mistake` and the reset: tests/course/test_journey.py.)
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from sandbox.course import labs
from sandbox.course.labs import lab6

from .conftest import ROOT

LABS = labs.discover(ROOT / "labs")


def test_lab_list(run_cli, sandbox_dir: Path) -> None:
    rc, out, _ = run_cli("lab", "list")
    assert rc == 0
    for lab in LABS:
        assert str(lab.student.relative_to(ROOT)) in out
        assert f"not started (0/{len(lab.checks)})" in out
    labs.workspace(1)
    run_cli("lab", "check", "1")
    rc, out, _ = run_cli("lab", "list")
    assert f"0/{len(labs.get(1).checks)} checks, today" in out.splitlines()[0], out


def test_solution_is_written_on_request_and_says_so(run_cli, tmp_path: Path) -> None:
    rc, out, _ = run_cli("lab", "solution", "2", "--out", tmp_path)
    dest = tmp_path / "02-sign-and-trust.solution.ipynb"
    assert rc == 0 and f"reference solution of lab 2: {dest}" in out
    nb = nbformat.read(dest, as_version=4)
    assert any("solution" in c.metadata.get("tags", []) for c in nb.cells)
    rc, out, _ = run_cli("lab", "solution", "all", "--out", tmp_path)
    assert rc == 0 and len(list(tmp_path.glob("*.solution.ipynb"))) == len(LABS)
    rc, _, err = run_cli("lab", "solution", "2", "--out", "/proc/sbx-nope")
    assert rc == 1 and "choose a writable directory" in err and "Traceback" not in err


def test_unknown_lab_is_a_clear_error(run_cli) -> None:
    rc, _, err = run_cli("lab", "check", "99")
    assert rc == 1 and "There is no lab 99" in err and "Traceback" not in err
    rc, _, err = run_cli("lab", "check", "")
    assert rc == 1 and err.startswith("sandbox: There is no lab ''; the labs are: 1, ")


def test_check_before_starting_says_what_to_do(run_cli, lab_state: Path) -> None:
    rc, out, _ = run_cli("lab", "check", "4")
    assert rc == 1 and "run the lab's first cells" in out
    assert "0 of 7 checks pass (7 not checked yet)" in out


@pytest.mark.root
@pytest.mark.slow
def test_reset_stops_every_pod_a_rerun_cell_started(lab_state: Path, run_cli) -> None:
    from sandbox.pod import stage0 as pod
    ws = labs.workspace(6)
    store = lab6.catalogue_store()
    uuids = []
    for _ in range(2):   # the learner ran the "run the pod" cell twice
        p = pod.run(store, lab6.LAB6_APPS, detach=True)
        uuids.append(p.uuid)
        ws.answer("pod", p.uuid)
    assert ws.history("pod") == uuids
    rc, out, _ = run_cli("lab", "reset", "6")
    assert rc == 0 and all(f"stopped pod {u[:8]}" in out for u in uuids), out
    assert pod.list_pods() == []
