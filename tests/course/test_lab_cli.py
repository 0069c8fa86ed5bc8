"""`sandbox lab list|check|reset` from a shell, on the state a lab left behind.

Each lab's solution runs with its cleanup cells skipped; then, from the CLI: the checks pass
(exit 0); the state is damaged the way a learner might, and the check fails with the hint that
live state calls for (exit 1); `sandbox lab reset N` removes everything the lab made.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from sandbox.course import labs
from sandbox.course.labs import lab1, lab4, lab5, lab6
from sandbox.net import netns

from .conftest import ROOT, run_notebook

LABS = labs.discover(ROOT / "labs")


def _ws(n: int) -> labs.Workspace:
    return labs.Workspace(n, create=False)


def _damage_1(ws: labs.Workspace) -> str:
    ws.answer("image_id", lab1.compressed_sha512(ws.path / "hello.aci"))
    return "you hashed the file as it is on disk"


def _damage_2(ws: labs.Workspace) -> str:
    (ws.path / "tampered.aci").write_bytes((ws.path / "hello.aci").read_bytes())
    return "tampered.aci is byte-for-byte hello.aci"


def _damage_3(ws: labs.Workspace) -> str:
    ws.answer("prediction", ["/app/run", "/bin/tool", "/etc/app.conf", "/lib/libc.so", "/etc/motd"])
    return "example.com/lab3-base filtered out by the whitelist of example.com/lab3-app"


def _damage_4(ws: labs.Workspace) -> str:
    n = lab4.lab4_names(ws)
    subprocess.run(["ip", "-n", n["B"], "link", "set", n["VB"], "down"], check=True)
    return f"the veth {n['VB']} exists but is DOWN inside the netns {n['B']}"


def _damage_5(ws: labs.Workspace) -> str:
    netns.delete(lab5.lab5_names(ws)["node"])
    return "run `sandbox lab reset 5`"


def _damage_6(ws: labs.Workspace) -> str:
    from sandbox.pod import stage0 as pod
    pod.stop(ws.answers()["pod"], timeout=5)
    return "its apps cannot be inspected any more; run `sandbox lab reset 6`"


DAMAGE: dict[int, Callable[[labs.Workspace], str]] = {
    1: _damage_1, 2: _damage_2, 3: _damage_3, 4: _damage_4, 5: _damage_5, 6: _damage_6}


def test_lab_list(run_cli) -> None:
    rc, out, _ = run_cli("lab", "list")
    assert rc == 0
    for lab in LABS:
        assert str(lab.student.relative_to(ROOT)) in out


def test_unknown_lab_is_a_clear_error(run_cli) -> None:
    rc, _, err = run_cli("lab", "check", "99")
    assert rc == 1 and "There is no lab 99" in err and "Traceback" not in err


def test_check_before_starting_says_what_to_do(run_cli, lab_state: Path) -> None:
    rc, out, _ = run_cli("lab", "check", "4")
    assert rc == 1 and "run the lab's first cells" in out


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS, ids=[l.path.name for l in LABS])
def test_shell_check_reads_the_state_the_lab_left(lab: labs.Lab, lab_state: Path, run_cli) -> None:
    nb, err = run_notebook(lab.solution, lab_state, skip_tag="cleanup")
    assert err is None, str(err)
    ws = _ws(lab.number)
    names = ws.names()
    rc, out, _ = run_cli("lab", "check", str(lab.number))
    assert rc == 0 and "all checks pass" in out, out

    expected = DAMAGE[lab.number](ws)
    rc, out, _ = run_cli("lab", "check", str(lab.number))
    assert rc == 1 and expected in out, out

    rc, out, _ = run_cli("lab", "reset", str(lab.number))
    assert rc == 0, out
    assert not ws.path.exists()
    for name in names.values():
        assert not netns.path_of(name).exists(), f"{name} survived the reset"
    assert not [l for l in os.listdir("/sys/class/net") if l.startswith(f"sbx") and
                any(l.startswith("sbx" + n.split("-")[2]) for n in names.values())]
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
