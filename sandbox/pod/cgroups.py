"""A cgroup for every pod, always, and the resource isolators in it (ace.md §Resource
Isolators: resource/memory, resource/cpu) — on cgroup v2 (the workshop VM) and v1/hybrid (this
CI machine). The kernel side (finding hierarchies, killing a group) is
:mod:`sandbox._sys.cgroupfs`.

Every process that works for a pod is in the pod's group, so ``sandbox status`` lists them,
``stop`` and ``gc`` kill them all at once (nothing survives its pod), and the group goes away
with the pod::

    sandbox/<pod uuid>/
        stage1/         the pod's PID 1 and the apps it starts (they inherit the group)
        supervisor/     stage0's supervisor, once it has forked PID 1, and the CNI DEL
                        plugins it runs at teardown
        apps/<app>/     only an app with resource limits (resource/memory, resource/cpu)

Why this shape: moving a process between groups costs an RCU grace period (10-20 ms; see
:func:`sandbox._sys.cgroupfs.join`), a fork costs nothing. So the supervisor is forked straight
into ``stage1/`` (:class:`Claim`) — it sets the pod up there (its CNI ADD plugins run there
too) and forks PID 1, which is born in the group, as are the apps PID 1 starts — then it moves
to ``supervisor/`` while PID 1 works, so that it can kill the pod's processes without killing
itself. An app joins a group of its own only when it has limits to apply.

Removal: the supervisor removes ``stage1/`` and ``apps/`` before it reports the pod exited;
the groups it is in itself (``supervisor/`` and the pod's) go when it has ended — the
foreground ``sandbox run`` that owns the pod removes them once it has reaped it (no move back
on the way out); a supervisor with no owner left moves out and removes them itself; ``rm``
and ``gc`` remove whatever is left.

The tree lives in the *tracking* hierarchy, the one that can kill a group: v2 on a pure-v2
machine (``cgroup.kill``); on v1/hybrid the v1 freezer's (freeze, kill, thaw).
``SANDBOX_CGROUP=v2`` picks a hybrid machine's v2 hierarchy (/sys/fs/cgroup/unified) instead,
``SANDBOX_CGROUP=v1`` the freezer. On v1, resource limits go in groups of the same path under
the memory and cpu hierarchies too; on v2 the controllers are enabled down the tree
(``cgroup.subtree_control``) and the limits written in the app's group.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from sandbox._sys import cgroupfs
from sandbox.errors import SandboxError

TYPE_CHECKING = False   # typing is for annotations only: importing it costs ~2 ms per pod start
if TYPE_CHECKING:
    from typing import Any

# Limits is a plain class, not a dataclass: this module is on the path of every pod start,
# where importing dataclasses (and inspect with it) would cost ~6 ms.

ROOT = Path("/sys/fs/cgroup")
BASE = "sandbox"                # the kit's group, parent of every pod's
CPU_PERIOD_US = 100_000
# The quota the kernel takes per period (kernel/sched/core.c, tg_set_cfs_bandwidth): at least
# 1 ms (min_cfs_quota_period), at most MAX_BW = 2^44 - 1 us. ace.md's resource/cpu limit is
# any quantity ("1m" is one): below the minimum it is raised to it (kubelet's MinQuotaPeriod
# does the same), above the maximum — about 175.9 million cores — it limits nothing, so none is
# written. Either way the kernel said EINVAL, reported as "check that the hierarchy is writable".
CPU_QUOTA_MIN_US = 1000
CPU_QUOTA_MAX_US = (1 << 44) - 1


class CgroupError(SandboxError):
    """A pod's cgroup or a resource isolator could not be set up."""


def version(root: Path = ROOT) -> int:
    """2 when /sys/fs/cgroup is the unified hierarchy, else 1 (v1 or hybrid)."""
    return 2 if (root / "cgroup.controllers").exists() else 1


class Limits:
    def __init__(self, memory_bytes: int | None = None, cpu_millis: int | None = None) -> None:
        self.memory_bytes = memory_bytes    # resource/memory limit
        self.cpu_millis = cpu_millis        # resource/cpu limit, in millicores

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limits) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"Limits(memory_bytes={self.memory_bytes}, cpu_millis={self.cpu_millis})"

    def empty(self) -> bool:
        return self.memory_bytes is None and self.cpu_millis is None

    def controllers(self) -> set[str]:
        return ({"memory"} if self.memory_bytes is not None else set()) | (
            {"cpu"} if self.cpu_millis is not None else set())


def limits_from_isolators(isolators: list) -> Limits:
    """resource/memory and resource/cpu ``limit`` values (quantities such as ``512M``, ``500m``)."""
    lim = Limits()
    for iso in isolators:
        if iso.name == "resource/memory" and iso.limit is not None:
            lim.memory_bytes = int(iso.limit)
        elif iso.name == "resource/cpu" and iso.limit is not None:
            lim.cpu_millis = max(1, int(iso.limit * 1000))
    return lim


def tracking() -> cgroupfs.Hierarchy:
    """The hierarchy that holds every process of every pod (see the module docstring)."""
    want = os.environ.get("SANDBOX_CGROUP", "auto")
    hs = cgroupfs.hierarchies()             # one read of the mount table for both questions
    v2 = next((h for h in hs if h.version == 2), None)
    freezer = next((h for h in hs if h.version == 1 and "freezer" in h.controllers), None)
    if want == "v2" or (want == "auto" and v2 is not None and v2.root == ROOT):
        if v2 is None:
            raise CgroupError("SANDBOX_CGROUP=v2 but no cgroup v2 hierarchy is mounted; unset it "
                              "or mount one (mount -t cgroup2 none /sys/fs/cgroup/unified).")
        return v2
    if freezer is not None:
        return freezer
    if want == "auto" and v2 is not None:
        return v2
    raise CgroupError("neither a cgroup v2 hierarchy nor the v1 freezer is mounted, so a pod's "
                      "processes cannot be tracked; mount one (see cgroups(7)).")


def _limit_writes(limits: Limits, version: int) -> dict[str, list[tuple[str, str]]]:
    """{controller: [(file, value), …]} in the order they must be written (cpu: period first)."""
    out: dict[str, list[tuple[str, str]]] = {}
    if limits.memory_bytes is not None:
        out["memory"] = [("memory.max" if version == 2 else "memory.limit_in_bytes",
                          str(limits.memory_bytes))]
    if limits.cpu_millis is not None:
        quota = max(CPU_QUOTA_MIN_US, limits.cpu_millis * CPU_PERIOD_US // 1000)
        if quota > CPU_QUOTA_MAX_US:
            quota = -1                  # no limit: "max" on v2, -1 on v1
        out["cpu"] = ([("cpu.max", f"{'max' if quota < 0 else quota} {CPU_PERIOD_US}")]
                      if version == 2 else
                      [("cpu.cfs_period_us", str(CPU_PERIOD_US)), ("cpu.cfs_quota_us", str(quota))])
    return out


class PodCgroups:
    """The cgroups of one pod (see the module docstring for the tree)."""

    def __init__(self, uuid: str, hierarchy: cgroupfs.Hierarchy | None = None) -> None:
        self.uuid = uuid
        self.hierarchy = hierarchy if hierarchy is not None else tracking()
        self.top = self.hierarchy.root / BASE / uuid
        self.supervisor = self.top / "supervisor"
        self.stage1 = self.top / "stage1"
        self.apps = self.top / "apps"

    def __repr__(self) -> str:
        return f"PodCgroups({self.uuid!r}, {str(self.top)!r})"

    def app(self, name: str) -> Path:
        return self.apps / name

    def create(self, apps: dict[str, Limits]) -> dict[str, list[str]]:
        """Make the pod's groups, and a group for each app with limits (the limits written);
        returns {app: the groups it is in} (``stage1/`` for an app without limits). Raises
        CgroupError when a limit cannot be applied."""
        h = self.hierarchy
        try:
            for g in (self.supervisor, self.stage1):
                cgroupfs.make(g)
            want: set[str] = set()
            for lim in apps.values():
                want |= lim.controllers()
            if h.version == 2 and want:
                missing = want - set(h.controllers)
                if missing:
                    raise CgroupError(f"the cgroup v2 controllers {', '.join(sorted(missing))} are "
                                      f"not available in {h.root}, so the resource isolator cannot "
                                      "be applied.")
                enable = " ".join(f"+{c}" for c in sorted(want))
                cgroupfs.make(self.apps)
                for parent in (h.root, h.root / BASE, self.top, self.apps):
                    (parent / "cgroup.subtree_control").write_text(enable)
            out: dict[str, list[str]] = {}
            for name, lim in apps.items():
                if lim.empty():                 # it stays in stage1's group (no move)
                    out[name] = [str(self.stage1)]
                    continue
                d = self.app(name)
                cgroupfs.make(d)
                dirs = [d]
                for ctl, writes in _limit_writes(lim, h.version).items():
                    if h.version == 1:
                        ctl_h = cgroupfs.v1(ctl)
                        if ctl_h is None:
                            raise CgroupError(f"the cgroup v1 {ctl} controller is not mounted, so "
                                              f"resource/{ctl} cannot be applied.")
                        target = ctl_h.root / BASE / self.uuid / "apps" / name
                        cgroupfs.make(target)
                        if target not in dirs:
                            dirs.append(target)
                    else:
                        target = d
                    for fname, value in writes:
                        (target / fname).write_text(value)
                out[name] = [str(p) for p in dirs]
            return out
        except PermissionError as e:
            raise CgroupError(f"cannot create the pod's cgroups ({e.strerror}); pods need root.") from e
        except OSError as e:
            if isinstance(e, CgroupError):
                raise
            raise CgroupError(f"cannot set up the pod's cgroups under {self.top}: {e}; check that "
                              f"{h.root} is writable.") from e

    def dirs(self) -> list[tuple[cgroupfs.Hierarchy, Path]]:
        """Every group of this pod on the machine, whichever hierarchy it was made in (a pod
        started under another SANDBOX_CGROUP choice is found too)."""
        out = []
        for h in cgroupfs.hierarchies():
            d = h.root / BASE / self.uuid
            if d.is_dir():
                out.append((h, d))
        return out

    def pids(self) -> list[int]:
        """Every process of the pod (any hierarchy), each once."""
        seen: list[int] = []
        for _h, d in self.dirs():
            seen += [p for p in cgroupfs.procs(d) if p not in seen]
        return seen

    def processes(self) -> list[dict[str, Any]]:
        """The pod's live processes: pid, group (relative to the pod's) and command line."""
        out = []
        top = str(self.top)
        for pid in cgroupfs.procs(self.top) if self.top.is_dir() else self.pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                group = str(cgroupfs.group_of(pid, self.hierarchy))
            except (FileNotFoundError, ProcessLookupError):
                continue
            rel = group[len(top):].lstrip("/") if group.startswith(top) else group
            out.append({"pid": pid, "group": rel or ".", "cmd": cmd})
        return out

    def kill_payload(self) -> None:
        """SIGKILL the pod's PID 1, apps and everything they started (not the supervisor)."""
        cgroupfs.kill([self.stage1, self.apps], self.hierarchy)

    def kill_all(self) -> None:
        """SIGKILL every process of the pod, supervisor and CNI plugins included (the caller,
        e.g. ``gc``, is outside the pod)."""
        for h, d in self.dirs():
            cgroupfs.kill([d], h)

    def remove_payload(self, timeout: float = 5.0) -> list[str]:
        """The supervisor's teardown: kill what is left of PID 1 and the apps, wait until their
        groups are empty and remove them (``stage1/``, ``apps/``, in every hierarchy: v1
        limits live under memory and cpu too); returns the groups that are still there."""
        left = []
        for h, d in self.dirs():
            payload = [d / "stage1", d / "apps"]
            cgroupfs.kill(payload, h)
            cgroupfs.wait_empty([g for g in payload if g.is_dir()], h.version, timeout)
            for g in payload:
                left += cgroupfs.rmdir_tree(g, timeout) if g.is_dir() else []
        return left

    def remove(self, timeout: float = 5.0) -> list[str]:
        """Kill what is left, wait until the groups are empty and remove them (and the kit's
        parent group when no other pod uses it); returns the groups that are still there."""
        left = []
        for h, d in self.dirs():
            left += cgroupfs.remove(d, h, timeout)
            if not left:
                try:
                    os.rmdir(d.parent)
                except OSError:     # another pod still has its group there
                    pass
        return left


class Claim:
    """This process moving into a prepared pod's ``stage1`` group, in a helper thread, just
    before it forks the pod's supervisor (:func:`sandbox.pod.stage0.start`).

    Why: every move of a process between cgroups may wait for an RCU grace period (the kernel's
    global ``cgroup_threadgroup_rwsem``: 10-20 ms here), and a pod start needs one. Begun while
    the caller still imports the supervisor's modules, the wait overlaps work that has to be
    done anyway. The supervisor forked afterwards starts in ``stage1/``, and so do the pod's
    PID 1 and its apps (no move of their own); the caller moves back out right after the fork
    (a move too, but nothing waits for it: the supervisor is on its way)."""

    def __init__(self, uuid: str, limits: dict[str, Limits]) -> None:
        self.uuid, self.limits = uuid, limits
        self.home: Path | None = None
        self.error: Exception | None = None
        self._move: cgroupfs.Move | None = None
        # The groups are made here, in the caller's thread (~1 ms): made by the helper beside
        # the caller's imports, each of its ~25 system calls waited for the GIL on the way
        # back, and its move began 5-9 ms late under load. The helper only moves.
        try:
            groups = PodCgroups(uuid)
            groups.create(limits)
            home = cgroupfs.group_of(os.getpid(), groups.hierarchy)
        except Exception as e:  # noqa: BLE001 - the supervisor makes them again, and reports
            self.error = e
            return
        self.hierarchy = groups.hierarchy
        # ... and gets the GIL back from the importing caller within 0.5 ms (CPython's switch
        # interval is 5 ms) between its open() and its write(); restored by wait()
        self._interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._interval, 0.0005))
        self._move = cgroupfs.Move(groups.stage1)
        self._home = home

    def wait(self) -> bool:
        """Wait for the move; True when this process is now in the pod's stage1 group."""
        if self._move is not None:
            try:
                self._move.wait()
                self.home = self._home
            except Exception as e:  # noqa: BLE001 - the supervisor joins it itself, and reports
                self.error = e
            self._move = None
            sys.setswitchinterval(self._interval)
        return self.home is not None

    def release(self) -> None:
        """Move this process back to the group it came from."""
        if self.home is not None:
            try:
                cgroupfs.join(self.home)
            except OSError:
                cgroupfs.join(self.hierarchy.root)
            self.home = None


def claim(pod_dir: Path) -> Claim | None:
    """Begin a :class:`Claim` for the prepared pod in ``pod_dir`` (None when it has no plan)."""
    import json
    try:
        plan = json.loads((pod_dir / "plan.json").read_text())
    except (OSError, ValueError):
        return None
    return Claim(pod_dir.name, {a["name"]: Limits(**a["limits"]) for a in plan.get("apps", [])})
