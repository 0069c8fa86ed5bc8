"""`sandbox lab list|check|reset|solution` from a shell, on the state a lab left behind.

Each lab's solution runs top to bottom (its clean-up button is shown, not pressed); then, from
the CLI: the checks pass (exit 0) and `sandbox lab list` shows them passed; the lab module's
`mistake` damages the state the way a learner might, and the check fails with the hint that live
state calls for (exit 1); `sandbox lab reset N` removes everything the lab made.
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from sandbox.course import labs
from sandbox.course.labs import lab6
from sandbox.net import netns
from waiting import eventually

from .conftest import ROOT, run_notebook

LABS = labs.discover(ROOT / "labs")


def _ws(n: int) -> labs.Workspace:
    return labs.Workspace(n, create=False)


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


def test_check_before_starting_says_what_to_do(run_cli, lab_state: Path) -> None:
    rc, out, _ = run_cli("lab", "check", "4")
    assert rc == 1 and "run the lab's first cells" in out
    assert "0 of 7 checks pass (7 not checked yet)" in out


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS, ids=[l.path.name for l in LABS])
def test_shell_check_reads_the_state_the_lab_left(lab: labs.Lab, lab_state: Path, run_cli,
                                                  tmp_path: Path) -> None:
    nb, err = run_notebook(labs.write_solution(lab.number, tmp_path), lab_state)
    assert err is None, str(err)
    ws = _ws(lab.number)
    names = ws.names()
    rc, out, _ = run_cli("lab", "check", str(lab.number))
    assert rc == 0 and "all checks pass" in out, out
    rc, listing, _ = run_cli("lab", "list")
    n = len(lab.checks)
    assert f"{n}/{n} checks, today" in listing and "passed" in listing, listing

    expected = lab.module().mistake(ws)
    rc, out, _ = run_cli("lab", "check", str(lab.number))
    assert rc == 1 and expected in out, out

    rc, out, _ = run_cli("lab", "reset", str(lab.number))
    assert rc == 0, out
    assert not ws.path.exists()
    for name in names.values():
        assert not netns.path_of(name).exists(), f"{name} survived the reset"
    # host ends of veths whose peers lived in the deleted netns go when the kernel frees them
    eventually(lambda: [l for l in os.listdir("/sys/class/net") if l.startswith("sbx") and
                        any(l.startswith("sbx" + n.split("-")[2]) for n in names.values())],
               lambda left: not left, what="the lab's host links gone")
    if lab.number == 6:
        from sandbox.pod import stage0 as pod
        assert pod.list_pods() == []
    rc, out, _ = run_cli("lab", "reset", str(lab.number))
    assert rc == 0 and "nothing to remove" in out


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
