"""Control groups, the kernel's side (cgroups(7)): which hierarchies are mounted, who is in a
group, killing every process of a group for good, removing groups.

Two designs share the name, and the kit runs on both:

* **cgroup v2** — one *unified* hierarchy (fstype ``cgroup2``): at /sys/fs/cgroup on a pure-v2
  machine (the workshop VM under systemd), at /sys/fs/cgroup/unified on a *hybrid* one (v1
  controllers, plus an otherwise empty v2 tree: this CI machine).
* **cgroup v1** — one hierarchy per controller (fstype ``cgroup``; the mount's super options name
  its controllers): /sys/fs/cgroup/freezer, /sys/fs/cgroup/memory, …

Killing a group so that no process escapes (one that forks between "read the list" and "signal
it" would), the way runc and crun do it:

* v2 (Linux ≥ 5.14): write ``1`` to ``cgroup.kill``: the kernel SIGKILLs the whole subtree,
  racing forks included;
* v1: the freezer — ``FROZEN`` into ``freezer.state`` (child groups follow), wait until it reads
  FROZEN, SIGKILL every pid of every group below, then ``THAWED``: the tasks die on the thaw.

Then wait until the groups are empty and rmdir them bottom-up (a group with a process in it
cannot be removed: EBUSY).

Documentation/admin-guide/cgroup-v2.rst ("cgroup.kill", "cgroup.events"),
Documentation/admin-guide/cgroup-v1/freezer-subsystem.rst.
"""
from __future__ import annotations

import errno
import os
import signal
import time
from collections import namedtuple
from pathlib import Path

from sandbox._sys import mountinfo

TYPE_CHECKING = False   # typing is for annotations only: importing it costs ~2 ms per pod start
if TYPE_CHECKING:
    from typing import Callable, Iterable


# a group removed meanwhile: gone from the directory (ENOENT), or removed after its file was
# opened (kernfs answers ENODEV); ESRCH for a pid that exited mid-read
_GONE = (errno.ENOENT, errno.ENODEV, errno.ESRCH)


class Hierarchy(namedtuple("Hierarchy", "version root controllers")):
    """A mounted hierarchy: ``version`` 1 or 2, its mount point ``root`` (a Path), and its
    ``controllers`` (v1: those bound to the mount; v2: those its root offers)."""
    __slots__ = ()


def _v1_controllers() -> set[str]:
    """Every v1 controller the kernel knows (/proc/cgroups, first column)."""
    try:
        with open("/proc/cgroups") as f:
            return {line.split()[0] for line in f if line.strip() and not line.startswith("#")}
    except OSError:
        return set()


def hierarchies() -> list[Hierarchy]:
    """The cgroup hierarchies mounted in this mount namespace (whole trees only: a mount of a
    sub-group, as inside a container, is left out)."""
    known = None
    out, seen = [], set()
    for m in mountinfo.mounts():
        if m.root != "/" or m.target in seen or m.fstype not in ("cgroup", "cgroup2"):
            continue
        seen.add(m.target)
        root = Path(m.target)
        if m.fstype == "cgroup2":
            try:
                ctl = frozenset((root / "cgroup.controllers").read_text().split())
            except OSError:
                continue
            out.append(Hierarchy(2, root, ctl))
        else:
            if known is None:
                known = _v1_controllers()
            opts = m.super_options.split(",")
            ctl = frozenset(o for o in opts if o in known or o.startswith("name="))
            out.append(Hierarchy(1, root, ctl))
    return out


def unified() -> Hierarchy | None:
    """The v2 hierarchy, wherever it is mounted (None when there is none)."""
    return next((h for h in hierarchies() if h.version == 2), None)


def v1(controller: str) -> Hierarchy | None:
    """The v1 hierarchy that ``controller`` is bound to (None when it is not mounted)."""
    return next((h for h in hierarchies() if h.version == 1 and controller in h.controllers), None)


def group_of(pid: int | str, hierarchy: Hierarchy) -> Path:
    """The group ``pid`` is in, in ``hierarchy`` (from /proc/PID/cgroup: ``0::/path`` for v2,
    ``N:controllers:/path`` for each v1 hierarchy); its root when the process is not listed."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            hid, ctls, path = line.rstrip("\n").split(":", 2)
            if (hierarchy.version == 2 and hid == "0") or (
                    hierarchy.version == 1 and set(ctls.split(",")) == set(hierarchy.controllers)):
                return hierarchy.root / path.lstrip("/")
    return hierarchy.root


def make(group: Path, attempts: int = 20) -> None:
    """mkdir -p a group. Another process may rmdir an empty parent between two of our mkdirs
    (a pod's teardown removes the kit's parent group when it is the last): then try again."""
    for _ in range(attempts):
        try:
            group.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            continue
    group.mkdir(parents=True, exist_ok=True)


def join(group: Path | str, pid: int = 0, *, ready: Callable[[], object] | None = None) -> None:
    """Move ``pid`` (0: the caller) into ``group``: one write to its ``cgroup.procs``.

    Each move takes the kernel's global ``cgroup_threadgroup_rwsem`` for writing, and the first
    writer after a quiet spell waits for an RCU grace period (10-20 ms here): a move is never
    free, a fork is (the child starts in its parent's group). ``ready``, when given, is called
    once the file is open, right before the write: a move made by a helper thread needs no
    GIL from then on (see the supervisor)."""
    with open(os.path.join(group, "cgroup.procs"), "w") as f:
        if ready is not None:
            ready()
        f.write(str(pid))


class Move:
    """The caller moving into ``group`` in a helper thread (``cgroup.procs`` moves the whole
    process, whichever thread writes it), so that the move's wait (see :func:`join`) overlaps the
    caller's own work: stage0's imports (``sandbox.pod.cgroups.Claim``), the supervisor's build
    of the metadata service. With ``until_under_way`` the constructor returns only once the
    helper is at its write: from there on it needs no GIL, so work the caller starts next cannot
    hold it back. :meth:`wait` joins the helper and raises what the move raised."""

    def __init__(self, group: Path | str, *, until_under_way: bool = False) -> None:
        import threading
        self.error: BaseException | None = None
        under_way = threading.Event() if until_under_way else None

        def move() -> None:
            try:
                join(group, ready=under_way.set if under_way is not None else None)
            except BaseException as e:  # noqa: BLE001 - raised by wait()
                self.error = e
            finally:
                if under_way is not None:
                    under_way.set()

        self._thread = threading.Thread(target=move, name="sandbox-cgroups")
        self._thread.start()
        if under_way is not None:
            under_way.wait()

    def wait(self) -> None:
        self._thread.join()
        if self.error is not None:
            raise self.error


def is_in(group: Path | str) -> bool:
    """Is the caller in ``group`` itself (not below it)? Its ``cgroup.procs`` lists the
    processes in the reader's PID namespace, so the answer holds inside a pod too."""
    return str(os.getpid()) in _read(os.path.join(group, "cgroup.procs")).split()


def enter(groups: Iterable[Path | str]) -> None:
    """Join each of ``groups`` (one per hierarchy) that the caller is not in already: a process
    forked inside its group skips the move and its grace period."""
    for g in groups:
        if not is_in(g):
            join(g)


def _groups_below(group: Path) -> list[Path]:
    """``group`` and every group below it, parents first."""
    out = [group]
    for top, dirs, _ in os.walk(group):
        out += [Path(top, d) for d in sorted(dirs)]
    return out


def procs(group: Path) -> list[int]:
    """Every process in ``group`` and in the groups below it (empty when it does not exist)."""
    pids: list[int] = []
    for g in _groups_below(group):
        pids += [int(x) for x in _read(g / "cgroup.procs").split()]
    return pids


def populated(group: Path, version: int) -> bool:
    """Does any process live in ``group`` or below? (v2 keeps the answer in cgroup.events.)"""
    if version == 2:
        return "populated 1" in _read(group / "cgroup.events")
    return bool(procs(group))


def _read(path: Path | str) -> str:
    """A group's file; "" when the group is gone (removed meanwhile)."""
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        if e.errno not in _GONE:
            raise
        return ""


def _write(path: Path, text: str) -> None:
    """Write a group's file; nothing when the group is gone (removed meanwhile)."""
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        if e.errno not in _GONE:
            raise


def _sigkill_all(groups: Iterable[Path]) -> None:
    me = os.getpid()
    for g in groups:
        for pid in procs(g):
            if pid != me:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def kill(groups: list[Path], hierarchy: Hierarchy, freeze_timeout: float = 1.0) -> None:
    """SIGKILL every process in ``groups`` and below, with no escape for a forking one: v2
    ``cgroup.kill``; v1 freeze (freezer hierarchy), kill, thaw. A group that does not exist is
    skipped. The caller must not be inside them (it would freeze itself)."""
    groups = [g for g in groups if g.is_dir()]
    pids = {p for g in groups for p in procs(g)}
    if not pids:        # nothing to kill (and nothing can fork into an empty group): no freeze
        return
    if os.getpid() in pids:
        raise OSError(errno.EDEADLK, f"refusing to kill the caller's own cgroup ({groups[0]})")
    if hierarchy.version == 2:
        if all((g / "cgroup.kill").exists() for g in groups):
            for g in groups:
                _write(g / "cgroup.kill", "1")
            return
        # Linux < 5.14: the v2 freezer instead, the same dance as v1's
        control, freeze, thaw = "cgroup.freeze", "1", "0"
        state_file, done = "cgroup.events", "frozen 1"
    elif "freezer" in hierarchy.controllers:
        control, freeze, thaw = "freezer.state", "FROZEN", "THAWED"
        state_file, done = "freezer.state", "FROZEN"
    else:   # a v1 hierarchy without a freezer: kill until nobody is left (best effort)
        deadline = time.monotonic() + freeze_timeout
        while any(procs(g) for g in groups) and time.monotonic() < deadline:
            _sigkill_all(groups)
            time.sleep(0.005)
        return
    for g in groups:
        _write(g / control, freeze)
    # FREEZING until every task has stopped (one in an uninterruptible sleep may hold it up);
    # killing then is still right: the tasks die when thawed
    deadline = time.monotonic() + freeze_timeout

    def frozen(g: Path) -> bool:
        state = _read(g / state_file)
        return not state or done in state       # (a group removed meanwhile counts as frozen)
    while time.monotonic() < deadline and not all(frozen(g) for g in groups):
        time.sleep(0.001)
    _sigkill_all(groups)
    for g in groups:
        _write(g / control, thaw)


def wait_empty(groups: list[Path], version: int, timeout: float) -> bool:
    """Wait until no process is left in ``groups`` (dying processes leave a little after the
    signal); True when they are empty."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while any(populated(g, version) for g in groups):
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def rmdir_tree(group: Path, timeout: float = 5.0) -> list[str]:
    """rmdir ``group`` and every group below it, deepest first, retrying a busy one until
    ``timeout``; returns the groups that are still there."""
    left = []
    deadline = time.monotonic() + timeout
    for g in reversed(_groups_below(group)):
        delay = 0.0005      # a task that just died leaves its group within a ms or so
        while True:
            try:
                os.rmdir(g)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    left.append(str(g))
                    break
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
    return left


def remove(group: Path, hierarchy: Hierarchy, timeout: float = 5.0) -> list[str]:
    """Kill everything in ``group`` (and below), wait until it is empty, remove it; returns the
    groups that could not be removed."""
    if not group.is_dir():
        return []
    kill([group], hierarchy)
    wait_empty([group], hierarchy.version, timeout)
    return rmdir_tree(group, timeout)
