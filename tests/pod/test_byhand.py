"""A pod by hand (sandbox.pod.byhand, lab 11): the primitives in a helper process, checked
against the kernel's own record (/proc/PID/ns, mountinfo, status, cgroup) — and the safety
rules: the calls that would change the machine are refused, and stop() kills only the processes
it recorded (PID *and* start time)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox._sys import mountinfo
from sandbox.image import catalog
from sandbox.image.store import Store
from sandbox.pod import ace, byhand
from sandbox.render import treestore

pytestmark = pytest.mark.root

APP = ["/bin/busybox", "sleep", "100000"]


@pytest.fixture
def tree(sandbox_dir: Path, catalog_acis: dict[str, Path]) -> Path:
    store = Store()
    store.import_aci(catalog_acis["example.com/busybox"])
    return treestore.render_image(store, "example.com/busybox").rootfs


@pytest.fixture
def workdir(tmp_path: Path):
    d = tmp_path / "container"
    yield d
    byhand.stop(d)
    mountinfo.umount_below(d)


def _ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_the_calls_that_would_change_the_machine_are_refused(tree: Path, workdir: Path) -> None:
    bh = byhand.start(workdir, tree)
    host = Path("/proc/sys/kernel/hostname").read_text()
    with pytest.raises(byhand.ByHandError, match="rename the machine"):
        bh.sethostname("sbx-should-never-be-set")
    with pytest.raises(byhand.ByHandError, match="change the machine"):
        bh.make_private()
    with pytest.raises(byhand.ByHandError, match="every process on the machine"):
        bh.pivot_root()
    assert Path("/proc/sys/kernel/hostname").read_text() == host
    assert _ns(bh.pid, "mnt") == _ns("self", "mnt")      # nothing was unshared behind our back


def test_the_right_order_builds_an_isolated_app(tree: Path, workdir: Path) -> None:
    bh = byhand.start(workdir, tree)
    assert "fork next" in bh.unshare("mnt", "uts", "ipc", "net", "pid")
    bh.fork()
    assert bh.pid != bh.helper_pid
    bh.make_private()
    bh.mount_overlay()
    bh.join_cgroup()
    bh.pivot_root()
    bh.mount_proc()
    bh.sethostname("sbx-by-hand")
    assert bh.run(["/bin/busybox", "hostname"]).strip() == "sbx-by-hand"
    ps = bh.run(["/bin/busybox", "ps", "-o", "pid"]).split()[1:]
    assert ps[0] == "1" and len(ps) == 2                 # its own PID namespace: itself and ps
    bh.drop_capabilities()
    pid = bh.exec(APP)
    # the kernel's own record of the result
    for kind in ("mnt", "uts", "ipc", "net", "pid"):
        assert _ns(pid, kind) != _ns("self", kind)
    status = dict(l.split(":\t", 1) for l in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":\t" in l)
    assert status["NSpid"].split()[-1] == "1"
    want = sum(1 << ace.CAPS[c] for c in ace.DEFAULT_CAPS)
    assert int(status["CapEff"], 16) == want and int(status["CapBnd"], 16) == want
    root = [m for m in mountinfo.mounts(pid) if m.target == "/"][-1]
    assert root.fstype == "overlay"
    assert f"lowerdir={tree}" in Path(f"/proc/{pid}/mountinfo").read_text()
    assert any(m.target == "/proc" and m.fstype == "proc" for m in mountinfo.mounts(pid))
    assert "/sandbox/byhand-" in Path(f"/proc/{pid}/cgroup").read_text()
    assert mountinfo.below(workdir) == []                  # nothing propagated to the host
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3] == [a.encode() for a in APP]
    done = byhand.stop(workdir)
    assert any("killed the app" in d for d in done) and "removed its cgroup" in done
    assert not Path(f"/proc/{pid}").exists()


def test_order_mistakes_answer_with_what_they_need(tree: Path, workdir: Path) -> None:
    bh = byhand.start(workdir, tree)
    bh.unshare("mnt", "uts", "pid")
    with pytest.raises(byhand.ByHandError, match="mount point"):
        bh.pivot_root()                                    # no overlay mounted yet
    bh.fork()
    bh.make_private()
    bh.mount_overlay()
    bh.drop_capabilities()
    with pytest.raises(byhand.ByHandError, match="CAP_SYS_ADMIN"):
        bh.pivot_root()
    with pytest.raises(byhand.ByHandError, match="unshare takes"):
        bh.unshare("user")


def test_stop_kills_only_what_it_recorded(workdir: Path) -> None:
    """A record naming PID 1, this process, or a PID whose start time has changed (reused) is
    never acted on."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        workdir.mkdir(parents=True)
        start = byhand._start_time(sleeper.pid)
        for rec in ({"pid": 1, "pid_start": byhand._start_time(1)},
                    {"pid": os.getpid(), "pid_start": byhand._start_time(os.getpid())},
                    {"pid": sleeper.pid, "pid_start": str(int(start) + 1)},
                    {"helper": sleeper.pid}):
            (workdir / "byhand.json").write_text(json.dumps(rec))
            assert byhand.stop(workdir) in ([], ["removed its cgroup"])
            assert sleeper.poll() is None
        (workdir / "byhand.json").write_text(json.dumps({"pid": sleeper.pid, "pid_start": start}))
        assert any("killed" in d for d in byhand.stop(workdir))
        assert sleeper.wait(10) == -9
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
