"""Resource isolators through cgroups (ace.md §Resource Isolators: resource/memory, resource/cpu),
on both hierarchies: cgroup v2 (the workshop VM) and v1/hybrid (this CI machine).

One group per app: ``<root>/sandbox/<pod uuid>/<app>`` — v2 under the unified mount, v1 under
each controller's own mount (``memory``, ``cpu``). A process joins by writing ``0`` ("me") to
``cgroup.procs`` of each; :func:`remove` takes the groups away once they are empty.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from sandbox.errors import SandboxError

TYPE_CHECKING = False   # typing is for annotations only: importing it costs ~2 ms per pod start
if TYPE_CHECKING:
    pass

# Limits and Group are plain classes, not dataclasses: this module is on the path of every pod
# start, where importing dataclasses (and inspect with it) would cost ~6 ms.

ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000


class CgroupError(SandboxError):
    """A resource isolator could not be applied."""


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


def limits_from_isolators(isolators: list) -> Limits:
    """resource/memory and resource/cpu ``limit`` values (quantities such as ``512M``, ``500m``)."""
    lim = Limits()
    for iso in isolators:
        if iso.name == "resource/memory" and iso.limit is not None:
            lim.memory_bytes = int(iso.limit)
        elif iso.name == "resource/cpu" and iso.limit is not None:
            lim.cpu_millis = max(1, int(iso.limit * 1000))
    return lim


class Group:
    """The cgroup directories of one app (one for v2; one per controller for v1)."""

    def __init__(self, dirs: list[Path] | None = None, limits: Limits | None = None) -> None:
        self.dirs = list(dirs or [])
        self.limits = limits or Limits()

    def __repr__(self) -> str:
        return f"Group(dirs={self.dirs!r}, limits={self.limits!r})"

    def read(self, name: str) -> str:
        for d in self.dirs:
            if (d / name).exists():
                return (d / name).read_text().strip()
        raise FileNotFoundError(name)


def _v1_mount(controller: str, root: Path) -> Path | None:
    for cand in (root / controller, root / "cpu,cpuacct" if controller == "cpu" else None):
        if cand is not None and (cand / "cgroup.procs").exists():
            return cand
    return None


def _v1_group(root: Path, controller: str, pod: str, app: str, values: dict[str, int]) -> Path:
    mount = _v1_mount(controller, root)
    if mount is None:
        raise CgroupError(f"the cgroup v1 {controller} controller is not mounted, so "
                          f"resource/{controller} cannot be applied.")
    d = mount / "sandbox" / pod / app
    d.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():   # in order: cpu's period before its quota
        (d / name).write_text(str(value))
    return d


def create(pod: str, app: str, limits: Limits, root: Path = ROOT) -> Group:
    """Create the app's group(s) and write its limits. Nothing is made when ``limits`` is empty."""
    g = Group(limits=limits)
    if limits.empty():
        return g
    try:
        if version(root) == 2:
            base = root / "sandbox"
            base.mkdir(exist_ok=True)
            want = {"memory"} if limits.memory_bytes is not None else set()
            if limits.cpu_millis is not None:
                want.add("cpu")
            avail = set((root / "cgroup.controllers").read_text().split())
            missing = want - avail
            if missing:
                raise CgroupError(f"the cgroup v2 controllers {', '.join(sorted(missing))} are not "
                                  "available on this machine, so the isolator cannot be applied.")
            for parent in (root, base):
                (parent / "cgroup.subtree_control").write_text(
                    " ".join(f"+{c}" for c in sorted(want)))
            pod_dir = base / pod
            pod_dir.mkdir(exist_ok=True)
            (pod_dir / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(want)))
            d = pod_dir / app
            d.mkdir(exist_ok=True)
            if limits.memory_bytes is not None:
                (d / "memory.max").write_text(str(limits.memory_bytes))
            if limits.cpu_millis is not None:
                quota = limits.cpu_millis * CPU_PERIOD_US // 1000
                (d / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
            g.dirs.append(d)
        else:   # v1: one group per controller, each under that controller's own mount
            if limits.memory_bytes is not None:
                g.dirs.append(_v1_group(root, "memory", pod, app, {
                    "memory.limit_in_bytes": limits.memory_bytes}))
            if limits.cpu_millis is not None:
                g.dirs.append(_v1_group(root, "cpu", pod, app, {
                    "cpu.cfs_period_us": CPU_PERIOD_US,
                    "cpu.cfs_quota_us": limits.cpu_millis * CPU_PERIOD_US // 1000}))
    except PermissionError as e:
        raise CgroupError(f"cannot create cgroups ({e}); resource isolators need root.") from None
    return g


def pod_dirs(pod: str, root: Path = ROOT) -> list[Path]:
    """Every cgroup directory this kit may have made for ``pod`` (any hierarchy)."""
    out = []
    if version(root) == 2:
        out.append(root / "sandbox" / pod)
    else:
        for ctl in ("memory", "cpu", "cpu,cpuacct"):
            out.append(root / ctl / "sandbox" / pod)
    return [d for d in out if d.exists()]


def remove(pod: str, root: Path = ROOT, timeout: float = 5.0) -> list[str]:
    """Remove the pod's groups (children first). A group still holding processes is retried
    until ``timeout``; what cannot be removed is returned."""
    left = []
    for d in pod_dirs(pod, root):
        for sub in sorted((p for p in d.iterdir() if p.is_dir()), reverse=True):
            if not _rmdir(sub, timeout):
                left.append(str(sub))
        if not _rmdir(d, timeout):
            left.append(str(d))
        else:   # the kit's parent group goes too once no other pod uses it
            _rmdir(d.parent, 0)
    return left


def _rmdir(d: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(d)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


