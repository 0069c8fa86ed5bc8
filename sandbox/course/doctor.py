"""``sandbox doctor``: is this machine ready for the workshop? One line per check, with the fix.

The first thing each learner runs (docs/instructor.md). Every check is one function that returns
a :class:`Finding`; its inputs (the paths it reads, the environment, the clock) are parameters
with the real ones as defaults, so the tests can make each check fail on purpose.

The checks, and the notebooks' troubleshooting boxes that name them:

============  =================================================================================
root          namespaces, mounts and netlink need root
netns         the kernel lets this process make a network namespace (notebooks 05, 06, 09)
overlay       overlayfs for clean copies of rendered trees (02, 07); without it, slower copies
cgroups       v2 (unified) or v1 with memory and cpu controllers (07: per-pod resource limits)
openat2       the in-root path resolver; without it the kit's O_NOFOLLOW walk is used
tools         dot, runc, skopeo, umoci, gpg, ip, iptables, ping; Debian's CNI plugins
widgets       ipywidgets and JupyterLab's widget manager that match it (else "model not found")
state         $SANDBOX_DIR exists (or can be made) and is writable, with room to spare
clock         the clock is not earlier than the newest installed package (signatures, caches)
proxy         a proxy in the environment leaves 127.0.0.1 alone (no_proxy)
kernels       no notebook state left by a kernel that died
leftovers     nothing from earlier sessions: netns, links, mounts, CNI cache, pods
============  =================================================================================

Nothing here changes the machine except the probes' own short-lived objects (a thread's network
namespace that dies with it; a temporary file in the state directory, removed at once).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from sandbox import config

OK, WARN, FAIL = "ok", "warn", "fail"
MARK = {OK: "✓", WARN: "!", FAIL: "✗"}


@dataclass(frozen=True)
class Finding:
    check: str
    status: str          # ok | warn | fail
    detail: str          # what was found
    fix: str = ""        # what to do about it (warn and fail)

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    def line(self, width: int = 10) -> str:
        text = f"{MARK[self.status]} {self.check:<{width}} {self.detail}"
        if self.fix and self.status != OK:
            text += f" — {self.fix}"
        return text


def check_root(euid: int | None = None) -> Finding:
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return Finding("root", OK, "running as root")
    return Finding("root", FAIL, f"running as uid {euid}",
                   "run as root: `sudo -i` (in the VM JupyterLab already runs as root)")


def check_netns() -> Finding:
    from sandbox._sys import libc
    from sandbox.net import netns
    try:   # a helper thread unshares a network namespace for itself; it dies with the thread
        netns.in_thread(libc.unshare, libc.CLONE_NEWNET)
    except OSError as e:
        return Finding("netns", FAIL, f"cannot create a network namespace ({e.strerror})",
                       "run as root on a Linux kernel with CONFIG_NET_NS (the VM has it); inside "
                       "a container, start it with --privileged")
    return Finding("netns", OK, "network namespaces can be created")


def check_overlay(filesystems: Path = Path("/proc/filesystems"), euid: int | None = None) -> Finding:
    euid = os.geteuid() if euid is None else euid
    try:
        have = any(line.split()[-1] == "overlay" for line in filesystems.read_text().splitlines()
                   if line.strip())
    except OSError as e:
        have, why = False, f"cannot read {filesystems} ({e.strerror})"
    else:
        why = "the kernel has no overlay filesystem"
    if have and euid == 0:
        return Finding("overlay", OK, "overlayfs available (clean copies are overlays)")
    if have:
        why = "mounting overlayfs needs root"
    return Finding("overlay", WARN, f"{why}: clean copies fall back to plain copies (slower)",
                   "`modprobe overlay` as root (Debian's kernel has the module)")


def check_cgroups(hierarchies: list | None = None) -> Finding:
    """A pod's processes are tracked in a v2 hierarchy or the v1 freezer; its resource limits
    need the memory and cpu controllers (``sandbox._sys.cgroupfs`` reads the mounts)."""
    from sandbox._sys import cgroupfs
    hs = cgroupfs.hierarchies() if hierarchies is None else hierarchies
    v2 = next((h for h in hs if h.version == 2), None)
    v1 = {c for h in hs if h.version == 1 for c in h.controllers}
    if v2 is None and "freezer" not in v1:
        return Finding("cgroups", FAIL, "no cgroup v2 hierarchy and no v1 freezer is mounted: a "
                       "pod's processes cannot be tracked", "mount one: `mount -t cgroup2 none "
                       "/sys/fs/cgroup` (the VM and systemd machines have it)")
    have = v1 | (set(v2.controllers) if v2 is not None else set())
    missing = [c for c in ("memory", "cpu") if c not in have]
    kind = ("cgroup v2 (unified)" if v2 is not None and not v1 else
            "cgroup v1" if v2 is None else "hybrid cgroups (v1 controllers, v2 tree)")
    if missing:
        return Finding("cgroups", WARN, f"{kind} without {', '.join(missing)}",
                       "enable those controllers (the VM has them): resource limits of notebook "
                       "07 are not applied without them")
    return Finding("cgroups", OK, f"{kind} with memory and cpu")


def check_openat2() -> Finding:
    from sandbox._sys import inroot
    if inroot.openat2_available():
        return Finding("openat2", OK, "openat2(RESOLVE_IN_ROOT) resolves image paths in the kernel")
    if os.environ.get("SANDBOX_NO_OPENAT2") == "1":
        return Finding("openat2", WARN, "openat2 turned off by SANDBOX_NO_OPENAT2=1",
                       "unset SANDBOX_NO_OPENAT2 (the O_NOFOLLOW walk is as safe, and slower)")
    return Finding("openat2", WARN, "no openat2 (kernel older than 5.6, or a seccomp filter)",
                   "nothing to do: the kit walks image paths with O_NOFOLLOW instead (slower)")


# tool -> (Debian package, who needs it)
TOOLS = {
    "dot": ("graphviz", "every picture"),
    "ip": ("iproute2", "labs 4 and 5, `ip netns exec`"),
    "iptables": ("iptables", "notebook 06's ipMasq"),
    "ping": ("iputils-ping", "notebooks 05, 06 and lab 4"),
    "gpg": ("gnupg", "notebook 03's interop cells"),
    "runc": ("runc", "notebook 08"),
    "skopeo": ("skopeo", "notebook 08"),
    "umoci": ("umoci", "notebook 08"),
}
UPSTREAM_PLUGINS = ("bridge", "host-local", "loopback", "ptp", "macvlan", "ipvlan")


def check_tools(path: str | None = None, cni_dir: Path | None = None) -> Finding:
    from sandbox.net.cni.invoke import DEBIAN_CNI_DIR
    path = os.environ.get("PATH", os.defpath) if path is None else path
    cni_dir = Path(DEBIAN_CNI_DIR) if cni_dir is None else cni_dir
    missing = {t: v for t, v in TOOLS.items() if shutil.which(t, path=path) is None}
    plugins = [p for p in UPSTREAM_PLUGINS if not os.access(cni_dir / p, os.X_OK)]
    if not missing and not plugins:
        return Finding("tools", OK, f"{', '.join(TOOLS)} and the CNI plugins in {cni_dir}")
    what = [f"{t} ({why})" for t, (_, why) in missing.items()]
    pkgs = sorted({pkg for pkg, _ in missing.values()})
    if plugins:
        what.append(f"{cni_dir}/{{{','.join(plugins)}}} (notebooks 06, 09, lab 5)")
        pkgs.append("containernetworking-plugins")
    return Finding("tools", FAIL, "missing " + "; ".join(what),
                   f"`apt-get install {' '.join(pkgs)}` (or `make install`, which does it)")


def check_widgets() -> Finding:
    from importlib import metadata
    try:
        iw = metadata.version("ipywidgets")
        jw = metadata.version("jupyterlab_widgets")
    except metadata.PackageNotFoundError as e:
        return Finding("widgets", FAIL, f"{e.name} is not installed",
                       "`make install` (it installs the widget packages into .venv)")
    # ipywidgets 8.x talks to jupyterlab_widgets 3.x; 7.x to 1.x (else "model not found")
    want = {"8": "3", "7": "1"}.get(iw.split(".")[0])
    if want is None or jw.split(".")[0] != want:
        return Finding("widgets", FAIL, f"ipywidgets {iw} with jupyterlab_widgets {jw} do not match",
                       "`make install` again, then restart JupyterLab and reload the page")
    return Finding("widgets", OK, f"ipywidgets {iw}, jupyterlab_widgets {jw}")


def check_state(state: Path | None = None, min_free: int = 1 << 30) -> Finding:
    state = config.sandbox_dir() if state is None else state
    try:
        state.mkdir(parents=True, exist_ok=True)
        probe = state / f".doctor-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        return Finding("state", FAIL, f"cannot write to {state} ({e.strerror})",
                       "run as root, or point SANDBOX_DIR (or --dir) at a writable directory")
    free = shutil.disk_usage(state).free
    if free < min_free:
        return Finding("state", WARN, f"{state} has only {free >> 20} MiB free",
                       "free some space (`sandbox gc`, `sandbox reset`): the catalogue and "
                       "rendered trees need about 1 GiB")
    return Finding("state", OK, f"{state} is writable ({free >> 30} GiB free)")


def _reference_mtime(paths: tuple[Path, ...]) -> float:
    best = 0.0
    for p in paths:
        try:
            best = max(best, p.stat().st_mtime)
        except OSError:
            pass
    return best


CLOCK_REFERENCES = (Path("/var/lib/dpkg/status"), Path(__file__))


def check_clock(now: float | None = None,
                references: tuple[Path, ...] = CLOCK_REFERENCES) -> Finding:
    now = time.time() if now is None else now
    ref = _reference_mtime(references)
    if ref and now + 300 < ref:    # five minutes of slack for file systems' clocks
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(now))
        return Finding("clock", FAIL, f"the clock says {when}, earlier than files installed on "
                       "this machine (new keys and signatures look like they come from the future)",
                       "set the time: `date -s 'YYYY-MM-DD HH:MM'` (in the VM: `vagrant reload`)")
    return Finding("clock", OK, time.strftime("%Y-%m-%d %H:%M", time.localtime(now)))


def check_proxy(env: Mapping[str, str] | None = None) -> Finding:
    env = os.environ if env is None else env
    proxies = sorted(k for k in env if k.lower() in ("http_proxy", "https_proxy", "all_proxy")
                     and env[k])
    if not proxies:
        return Finding("proxy", OK, "no proxy in the environment")
    bypass = {h.strip() for k in ("no_proxy", "NO_PROXY") for h in env.get(k, "").split(",")}
    missing = [h for h in ("127.0.0.1", "localhost") if h not in bypass and "*" not in bypass]
    if missing:
        return Finding("proxy", FAIL, f"{', '.join(proxies)} set and no_proxy lacks "
                       f"{', '.join(missing)}: the discovery server and JupyterLab on 127.0.0.1 "
                       "would be asked through the proxy",
                       "`export no_proxy=127.0.0.1,localhost` (behind a TLS-inspecting proxy, "
                       "install with LAB_EXTRA_CA_DIR=dir of its CA certificates)")
    return Finding("proxy", OK, f"{', '.join(proxies)} set; 127.0.0.1 and localhost bypass it")


def check_kernels() -> Finding:
    from sandbox.course import notebook
    dead = notebook.abandoned()
    if not dead:
        return Finding("kernels", OK, "no state left by a kernel that died")
    return Finding("kernels", WARN, f"notebook(s) {', '.join(dead)} left state when their kernel "
                   "died", "run that notebook's first cell again (it removes what the dead "
                   "kernel made), or `sandbox reset`")


_NOT_LEFTOVERS = ("state under ", "lab workspaces:", "notebook state:")


def check_leftovers(prefix: str = config.NAME_PREFIX) -> Finding:
    from sandbox.course import reset
    found = [line for line in reset.plan(prefix) if not line.startswith(_NOT_LEFTOVERS)]
    if not found:
        return Finding("leftovers", OK, "nothing left from earlier sessions")
    shown = "; ".join(found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
    return Finding("leftovers", WARN, f"{len(found)} thing(s) from earlier sessions: {shown}",
                   "when no notebook is running: `sandbox reset` (it lists them and asks first)")


CHECKS: dict[str, Callable[[], Finding]] = {
    "root": check_root, "netns": check_netns, "overlay": check_overlay,
    "cgroups": check_cgroups, "openat2": check_openat2, "tools": check_tools,
    "widgets": check_widgets, "state": check_state, "clock": check_clock,
    "proxy": check_proxy, "kernels": check_kernels, "leftovers": check_leftovers,
}


def run(only: list[str] | None = None) -> list[Finding]:
    """Run the checks (all, or those named in ``only``), in order; never raises."""
    from sandbox.errors import UsageError
    unknown = sorted(set(only or ()) - set(CHECKS))
    if unknown:
        raise UsageError(f"There is no check {', '.join(unknown)}; the checks are: "
                         f"{', '.join(CHECKS)}.")
    out = []
    for name, fn in CHECKS.items():
        if only and name not in only:
            continue
        try:
            out.append(fn())
        except Exception as e:  # noqa: BLE001 - a probe that cannot even run is a finding too
            out.append(Finding(name, FAIL, f"the check itself failed ({type(e).__name__}: {e})",
                               "run `sandbox doctor` as root; if it persists, tell the instructor"))
    return out
