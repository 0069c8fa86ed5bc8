"""A pod's start told by the stages themselves (the journal): every stage's namespaces at its
steps agree with what /proc says of the running pod afterwards (perspective.inspect reads
/proc/PID/ns of each process), the steps come in the order the runtime must take them, and
the picture is drawn from them."""
from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.image.store import Store
from sandbox.pod import perspective as podview
from sandbox.pod import stage0 as pod
from sandbox.steps import Steps
from sandbox.viz.stepper import Stepper, frame_of

pytestmark = pytest.mark.root
APPS = ["example.com/reduce-worker", "example.com/worker-backup"]


@pytest.fixture
def started(lab_state: Path):
    steps = Steps(snapshots=True)
    p = pod.run(Store(), APPS, detach=True, steps=steps)
    try:
        yield p, steps
    finally:
        pod.stop(p.uuid, timeout=10)
        pod.gc(grace=0)


def test_each_stage_tells_its_steps_with_its_namespaces(started) -> None:
    p, steps = started
    told = [s for s in steps if s.after and s.after.get("kind") == "pod"]
    by = lambda role, action: next(s for s in told if s.detail["role"] == role  # noqa: E731
                                   and s.action == action)
    info = podview.inspect(p.uuid)
    host = podview.host_view()["ns"]
    assert by("stage0", "start").detail["namespaces"]["net"] == host["net"]
    sup = by("supervisor", "fork").detail["namespaces"]
    assert sup["net"] == host["net"] and sup["pid"] == host["pid"]
    assert by("supervisor", "netns").detail["inode"] == info["shared"]["net"]
    init = by("pid1", "start").detail["namespaces"]
    for n in ("net", "pid", "ipc", "uts"):
        assert init[n] == info["shared"][n] != host[n]
    for app in info["apps"]:
        name = app["name"]
        ns = by(f"app {name}", "exec").detail["namespaces"]
        assert ns["mnt"] == app["ns"]["mnt"] != init["mnt"]            # its own mount namespace
        assert ns["net"] == info["shared"]["net"]                       # the pod's netns
        order = [s.action for s in told if s.detail["role"] == f"app {name}"]
        assert order == ["unshare", "mount", "pivot_root", "exec"]
    mounts = [s.detail["app"] for s in told if s.detail["role"] == "pid1" and s.action == "mount"]
    assert sorted(mounts) == sorted(a.split("/")[1] for a in APPS)
    ts = [s.t for s in told]
    assert ts == sorted(ts)


def test_the_picture_grows_with_the_start(started) -> None:
    _, steps = started
    ks = [i for i, s in enumerate(steps) if s.after and s.after.get("kind") == "pod"]
    first, last = (frame_of(steps, k).pictures[0].source for k in (ks[0], ks[-1]))
    assert "stage0 (this process)" in first and "PID 1 of the pod" not in first
    assert "PID 1 of the pod" in last and "pivot_root" in last
    assert all(f"app {a.split('/')[1]}" in last for a in APPS) and last.count("its runner") == len(APPS)
    assert Stepper(steps, static=True).render(ks[-1] + 1)[0].count("<svg") == 1
