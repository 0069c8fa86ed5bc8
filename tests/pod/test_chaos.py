"""Crash points: kill -9 the CLI, the supervisor, stage1 (the pod's PID 1) or a CNI plugin in the
middle of ADD or DEL, at a random moment, then `sandbox gc`: nothing of those pods is left — no
process, netns, veth, bridge port, reserved IP, libcni cache entry, iptables rule, mount,
cgroup or state file.

A *witness* pod runs on the default network the whole time, so the state directory's node netns
(its bridge, NAT rules, IPAM files) stays, and after every fault the node must look exactly as
the witness alone leaves it.

`make test` runs a bounded number of iterations with a fixed seed (the faults take turns, each
at a random moment); `make soak` runs many more:
``SANDBOX_CHAOS_ITERATIONS=300 SANDBOX_CHAOS_SEED=7 make soak``. A failure names the seed, the
iteration, the fault and its moment, so it can be replayed.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sandbox._sys import cgroupfs, mountinfo
from sandbox.image.store import Store
from sandbox.net import netns
from sandbox.pod import cgroups
from sandbox.pod import stage0 as pod
from waiting import eventually

# serial: the kills land at moments timed in milliseconds after a process appears
pytestmark = [pytest.mark.root, pytest.mark.serial]

TARGETS = ("cli", "supervisor", "stage1", "cni-add", "cni-del")
ITERATIONS = int(os.environ.get("SANDBOX_CHAOS_ITERATIONS", "10"))
SEED = int(os.environ.get("SANDBOX_CHAOS_SEED", "14"))


def _procs(group: Path) -> list[int]:
    return cgroupfs.procs(group) if group.is_dir() else []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


class Chaos:
    """One state directory, its witness pod, and the faults."""

    def __init__(self, state: Path, rng: random.Random) -> None:
        self.state, self.rng = state, rng
        self.env = {**os.environ, "SANDBOX_DIR": str(state)}
        self.known: set[str] = set()      # the witness
        self.seen: set[str] = set()       # every pod the faults made
        self.hits: Counter[str] = Counter()

    # -- what the state dir and the node hold -----------------------------------------------
    def pods(self) -> set[str]:
        root = self.state / "pods"
        return {d.name for s in root.iterdir() if s.is_dir() for d in s.iterdir()} if root.is_dir() else set()

    def node_view(self) -> dict[str, object]:
        """The node netns as the checks compare it: links, bridge ports, NAT and filter rules."""
        node = pod.node_name(self.state)
        try:
            snap = netns.snapshot(node)
        except (OSError, netns.NetnsError) as e:    # reported with the iteration, not raised
            return {"links": [f"the node netns cannot be read: {e}"], "ports": [], "nat": [],
                    "filter": []}
        rules = {t: netns.run(node, ["iptables", "-w", "-t", t, "-S"], capture_output=True,
                              text=True).stdout.splitlines() for t in ("nat", "filter")}
        return {"links": sorted(l["name"] for l in snap["links"]),
                "ports": sorted(l["name"] for l in snap["links"] if l["master"]), **rules}

    def files(self) -> list[str]:
        """Every file of the pods and the CNI state (the round-robin pointer of host-local left
        out: it moves with every allocation)."""
        out = []
        for part in ("pods", "cni", "net.d"):
            for p in sorted((self.state / part).rglob("*")) if (self.state / part).exists() else []:
                if p.is_file() and not p.name.startswith("last_reserved_ip."):
                    out.append(str(p.relative_to(self.state)))
        return out

    def cgroup_pods(self) -> set[str]:
        return {d.name for h in cgroupfs.hierarchies() if (h.root / cgroups.BASE).is_dir()
                for d in (h.root / cgroups.BASE).iterdir() if d.is_dir()} & self.seen

    def baseline(self) -> dict[str, object]:
        return {"node": self.node_view(), "files": self.files(),
                "mounts": mountinfo.below(self.state)}

    # -- the faults ---------------------------------------------------------------------------
    def _new_pod(self) -> str | None:
        new = self.pods() - self.known
        return next(iter(new)) if new else None

    def _wait(self, look, deadline: float, cli: subprocess.Popen):
        """Poll ``look()`` every millisecond until it answers, the CLI ends, or the deadline."""
        while time.monotonic() < deadline:
            v = look()
            if v:
                return v
            if cli.poll() is not None:
                return None
            time.sleep(0.001)
        return None

    def iteration(self, target: str, marker: str) -> str:
        """Start a pod with `sandbox run`, kill -9 the target at a random moment; returns what
        was done (for the failure message)."""
        cli = subprocess.Popen([sys.executable, "-m", "sandbox", "run", "example.com/busybox",
                                "--net=default", "--exec", f"/bin/sleep {marker}"],
                               env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        deadline = time.monotonic() + 30
        def run_json(uuid: str | None) -> dict:
            try:
                return pod._read_json(pod.find(uuid)[1] / "run.json") if uuid else {}
            except pod.PodError:            # removed meanwhile
                return {}
        done = f"{target}: "
        try:
            if target == "cli":
                delay = self.rng.uniform(0, 1.2)         # from start-up to a running pod
                time.sleep(delay)
                done += f"after {delay * 1000:.0f} ms"
                cli.kill()
                self.hits[target] += 1
                return done
            uuid = self._wait(self._new_pod, deadline, cli)
            if target in ("supervisor", "stage1"):
                key = "supervisor" if target == "supervisor" else "stage1"
                pid = self._wait(lambda: run_json(uuid).get(key), deadline, cli)
                delay = self.rng.uniform(0, 0.25 if key == "supervisor" else 0.5)
                time.sleep(delay)
                done += f"pid {pid}, {delay * 1000:.0f} ms after it appeared"
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    self.hits[target] += 1
                return done
            groups = cgroups.PodCgroups(uuid)
            # ADD runs while the supervisor is still in stage1's group (it forks PID 1 there),
            # DEL at teardown, from its own group (cgroups' module docstring)
            group = groups.stage1 if target == "cni-add" else groups.supervisor
            host = _pid_ns(os.getpid())
            if target == "cni-del":      # a running pod, stopped: its teardown runs DEL
                # running: PID 1 and the app, in the pod's PID namespace, in stage1's group
                self._wait(lambda: len([p for p in _procs(groups.stage1)
                                        if _pid_ns(p) not in (None, host)]) >= 2, deadline, cli)
                cli.send_signal(signal.SIGTERM)
            sup = self._wait(lambda: run_json(uuid).get("supervisor"), deadline, cli)
            # a plugin (or its fork before the exec) is in the host's PID namespace; PID 1 and
            # the apps, once forked into stage1's group, are not
            plugin = lambda: [p for p in _procs(group) if p not in (sup, cli.pid)  # noqa: E731
                              and _pid_ns(p) == host]
            found = self._wait(plugin, deadline, cli)
            delay = self.rng.uniform(0, 0.04)
            time.sleep(delay)
            now = plugin() or []
            done += f"{delay * 1000:.0f} ms into the plugin's life: {[_cmdline(p)[-40:] for p in now]}"
            if found and now:
                os.kill(self.rng.choice(now), signal.SIGKILL)
                self.hits[target] += 1
            return done
        finally:
            try:
                cli.wait(timeout=30)
            except subprocess.TimeoutExpired:       # a `run` that does not end is a failure too
                cli.kill()
                cli.wait()
                raise AssertionError(f"`sandbox run` did not end after {done}") from None

    def settle(self) -> None:
        """Wait until no pod of the iteration is being prepared or run any more (a supervisor
        still tearing down finishes first), then `sandbox gc` as a user would."""
        def busy() -> list[str]:
            out = []
            for s in ("embryo", "prepare", "prepared", "run"):
                sd = self.state / "pods" / s
                out += [d.name for d in sd.iterdir() if d.name not in self.known
                        and pod._is_locked(d)] if sd.is_dir() else []
            return out
        eventually(busy, lambda b: not b, timeout=60, what="every supervisor finished")
        self.seen |= self.pods() - self.known
        gc = subprocess.run([sys.executable, "-m", "sandbox", "gc", "--grace", "0"], env=self.env,
                            capture_output=True, text=True, timeout=120)
        assert gc.returncode == 0 and "Traceback" not in gc.stderr, gc.stderr

    def leftovers(self, base: dict[str, object], markers: list[str]) -> dict[str, object]:
        """What is left of the iterations' pods (empty when nothing is)."""
        left: dict[str, object] = {}
        if self.pods() - self.known:
            left["pod directories"] = sorted(self.pods() - self.known)
        if self.cgroup_pods():
            left["cgroups"] = sorted(self.cgroup_pods())
        handles = {pod.netns_name(u) for u in self.seen}
        if handles & set(os.listdir("/run/netns")):
            left["netns"] = sorted(handles & set(os.listdir("/run/netns")))
        procs = []
        ids = [f"CNI_CONTAINERID={u}".encode() for u in self.seen]
        for p in (int(x) for x in os.listdir("/proc") if x.isdigit()):
            cmd = _cmdline(p)
            if any(m in cmd for m in markers) or any(i in _environ(p) for i in ids):
                procs.append(f"{p} {cmd[:80]}")
        if procs:
            left["processes"] = procs
        if self.files() != base["files"]:
            left["state files"] = sorted(set(self.files()) ^ set(base["files"]))
        if mountinfo.below(self.state) != base["mounts"]:
            left["mounts"] = mountinfo.below(self.state)
        view = self.node_view()
        for k, v in view.items():
            if v != base["node"][k]:
                left[f"node {k}"] = sorted(set(v) ^ set(base["node"][k]))
        return left


@pytest.fixture
def chaos(sandbox_dir: Path, catalog_acis: dict[str, Path]):
    Store().import_aci(catalog_acis["example.com/busybox"])
    c = Chaos(sandbox_dir, random.Random(SEED))
    witness = pod.run(Store(), ["example.com/busybox"], net=["default"], detach=True,
                      exec_={0: ["/bin/sleep", "3600"]})
    c.known = {witness.uuid}
    try:
        yield c
    finally:
        for p in pod.list_pods():
            if p["state"].startswith("run"):
                pod.stop(p["uuid"], timeout=5)
        pod.gc(grace=0)
    assert not netns.exists(pod.node_name(sandbox_dir)), "the node goes with the last pod"
    assert not c.cgroup_pods() and pod.list_pods() == []


def test_kill_9_at_random_moments_then_gc_leaves_nothing(chaos: Chaos) -> None:
    base = chaos.baseline()
    assert len(base["node"]["ports"]) == 1          # the witness's veth on the bridge
    markers, log = [], []
    for i in range(ITERATIONS):
        target = TARGETS[i % len(TARGETS)]
        marker = f"3600.{chaos.rng.randrange(10**6):06d}"   # the app's unique argv, /proc finds it
        markers.append(marker)
        log.append(f"#{i} " + chaos.iteration(target, marker))
        chaos.settle()
        left = eventually(lambda: chaos.leftovers(base, markers), lambda left: not left,
                          timeout=15, what=f"seed {SEED}, {log[-1]}: nothing left")
        assert not left
    # every kind of fault really struck (a plugin that had ended before the kill is a miss)
    if ITERATIONS >= 2 * len(TARGETS):
        assert set(chaos.hits) == set(TARGETS), (chaos.hits, log)
    print(f"\nchaos: seed {SEED}, {ITERATIONS} iterations, faults that struck: {dict(chaos.hits)}")
