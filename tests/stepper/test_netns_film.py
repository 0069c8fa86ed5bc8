"""Namespace creation, replayed: the state recorded at each step is the kernel's (checked against
/proc and the handle's nsfs inode read independently), and the pictures are drawn from it."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from sandbox.net import netns
from sandbox.steps import Steps
from sandbox.viz.net import netns_before_after
from sandbox.viz.stepper import Stepper, frame_of

pytestmark = pytest.mark.root


@pytest.fixture
def handle(tmp_path: Path):
    p = tmp_path / "sbx-st-myns"
    p.touch()
    yield p
    netns.delete(str(p), missing_ok=True)


def test_each_step_holds_the_kernel_state_at_that_moment(handle: Path) -> None:
    steps = Steps(snapshots=True)
    ino = netns.bind(handle, steps=steps)
    host = os.stat("/proc/self/ns/net").st_ino
    me = threading.get_native_id()
    with netns.enter(handle, steps=steps):
        pass
    by = {s.action: s for s in steps}
    assert [s.action for s in steps] == ["write", "thread", "unshare", "mount", "exit", "setns",
                                         "setns"]
    helper = by["unshare"].detail["thread"]
    assert helper != me and ino == netns.ns_inode(handle) != host

    def threads(step):   # tid -> netns inode, as recorded
        return {t["tid"]: t["netns"] for t in step.after["threads"]}

    assert by["write"].after["handles"][0]["netns"] is None           # an empty file
    assert threads(by["thread"])[helper] == host                      # born in our netns
    assert threads(by["unshare"])[helper] == ino                      # moved by unshare
    assert by["unshare"].after["handles"][0]["netns"] is None         # not mounted yet
    assert by["mount"].after["handles"][0]["netns"] == ino            # the bind mount
    assert helper not in threads(by["exit"])                          # gone, and the mount
    assert by["exit"].after["handles"][0]["netns"] == ino             # keeps the netns alive
    assert threads(steps[5])[me] == ino and threads(steps[6])[me] == host   # setns: one thread
    # the pictures are drawn from those states
    src = frame_of(steps, 2).pictures[0].source
    assert f"net:[{ino}]" in src and f"tid {helper}" in src
    assert "ended" in frame_of(steps, 4).pictures[0].source
    ba = netns_before_after(steps).source
    assert "before" in ba and "after" in ba and f"net:[{ino}]" in ba
    page = Stepper(steps, static=True).static_html()
    assert page.count("<svg") == len(steps)


def test_no_state_is_read_unless_a_stepper_asked(handle: Path, monkeypatch) -> None:
    def boom(*a, **k):
        raise AssertionError("tasks_state read on the normal path")
    monkeypatch.setattr(netns, "tasks_state", boom)
    steps = Steps()
    netns.bind(handle, steps=steps)
    assert all(s.after is None for s in steps) and len(steps) == 5
