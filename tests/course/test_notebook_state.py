"""A notebook's own state directory (sandbox.course.notebook): under $SANDBOX_DIR, cleaned at
close, recovered after a kernel died — removing what that run recorded and nothing else — and
visible to `sandbox reset`.

A "kernel" here is a child Python process that opens a notebook's state and is then killed
(SIGKILL: no atexit, like a crashed kernel) or kept alive (a second kernel on the same notebook).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.course import notebook, reset
from sandbox.net import netns

pytestmark = [pytest.mark.root]

KERNEL = r"""
import json, os, sys
from sandbox.course import notebook
nb = notebook.start(sys.argv[1])
made = {"node": str(nb.netns.node()), "c1": str(nb.netns.create()),
        "scratch": str(nb.netns.tmpdir("sbx-k-")), "dir": str(nb.path)}
print(json.dumps(made), flush=True)
sys.stdin.readline()                     # wait until the test says what to do
"""


def _kernel(name: str) -> tuple[subprocess.Popen, dict[str, str]]:
    p = subprocess.Popen([sys.executable, "-c", KERNEL, name], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    line = p.stdout.readline()
    assert line, "the child kernel did not start"
    return p, json.loads(line)


@pytest.fixture
def leftovers():
    """Namespace handles a test makes itself; deleted at the end whatever happened."""
    made: list[str] = []
    yield made
    for p in made:
        netns.delete(p, Path(p).parent, missing_ok=True)


def test_state_lives_under_the_state_dir_and_close_removes_it(sandbox_dir: Path) -> None:
    nb = notebook.start("97")
    try:
        assert nb.path == sandbox_dir / "notebooks" / "97" and nb.path.is_dir()
        node = nb.netns.node()
        scratch = nb.netns.tmpdir()
        assert node.name.startswith("sbx-nb97-") and netns.is_netns(node)
        assert scratch.parent == nb.path / "scratch"
        record = json.loads((nb.path / "netns.json").read_text())
        assert record["netns"] == [{"path": str(node), "inode": netns.ns_inode(node)}]
        assert "notebook state: 97" in reset.plan()
    finally:
        gone = nb.close()
    assert str(node) in gone and not node.exists() and not nb.path.exists()
    assert nb.close() == []                      # idempotent


def test_running_the_first_cell_again_starts_clean(sandbox_dir: Path) -> None:
    first = notebook.start("97")
    node = first.netns.node()
    second = notebook.start("97")               # same process: the earlier run is closed
    try:
        assert first.closed and not node.exists()
        assert second.path.is_dir() and not any(second.path.glob("scratch/*"))
    finally:
        second.close()


def test_a_dead_kernel_is_cleaned_up_without_touching_anything_else(
        sandbox_dir: Path, leftovers: list[str]) -> None:
    child, made = _kernel("96")
    child.send_signal(signal.SIGKILL)           # a crashed kernel: no atexit, no close
    child.wait()
    assert netns.is_netns(made["node"]) and Path(made["scratch"]).is_dir()
    # Someone else's namespace at the path the dead kernel used for c1 (made after it died):
    # the record's inode no longer matches, so it must survive.
    netns.delete(made["c1"], Path(made["c1"]).parent)
    netns.create(made["c1"], Path(made["c1"]).parent)
    leftovers.append(made["c1"])
    decoy = netns.create(netns.unique_name("sbx-nb96"))     # same prefix, never recorded
    leftovers.append(str(decoy))

    nb = notebook.start("96")
    try:
        assert not Path(made["node"]).exists(), "the dead kernel's node netns is still there"
        assert not Path(made["scratch"]).exists()
        assert netns.is_netns(made["c1"]) and netns.is_netns(decoy)
    finally:
        nb.close()
    assert netns.is_netns(made["c1"]) and netns.is_netns(decoy)


def test_a_live_kernel_on_the_same_notebook_is_refused(sandbox_dir: Path) -> None:
    child, made = _kernel("95")
    try:
        with pytest.raises(notebook.NotebookStateError, match=f"process {child.pid}"):
            notebook.start("95")
        assert netns.is_netns(made["node"])     # nothing of the live run was removed
    finally:
        child.communicate("\n", timeout=30)     # it closes its state at exit
    assert not Path(made["node"]).exists() and not Path(made["dir"]).exists()


def test_sandbox_reset_removes_what_a_dead_kernel_left(sandbox_dir: Path) -> None:
    child, made = _kernel("94")
    child.send_signal(signal.SIGKILL)
    child.wait()
    done = reset.reset(prefix="sbx-nb94-none")   # narrow prefix: only the notebook's record acts
    assert any(made["node"] in d for d in done)
    assert not Path(made["node"]).exists() and not Path(made["c1"]).exists()
    assert not (sandbox_dir / "notebooks").exists()


def test_a_bad_name_is_one_sentence() -> None:
    with pytest.raises(notebook.NotebookStateError, match="not a notebook name"):
        notebook.start("../etc")
