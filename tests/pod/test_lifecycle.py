"""A pod's life under signals and faults (rkt and podman are the anchors): a foreground
`sandbox run` forwards stops and exits with the pod's status, every pod is in its own cgroup
(v1 freezer and v2, both run here on a hybrid machine), stop and gc kill by cgroup, a stop
during set-up unwinds it, and a pod whose supervisor or owner died is collected."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox._sys import cgroupfs
from sandbox.image.store import Store
from sandbox.net import netns
from sandbox.net.plugins import plugin_dir
from sandbox.pod import cgroups
from sandbox.pod import stage0 as pod
from waiting import eventually

pytestmark = pytest.mark.root


def _hierarchies() -> list[str]:
    """The pod cgroup modes this machine can run: v1 (the freezer) and/or v2 (the unified
    hierarchy, at /sys/fs/cgroup/unified on a hybrid machine)."""
    out = []
    if cgroupfs.v1("freezer") is not None:
        out.append("v1")
    if cgroupfs.unified() is not None:
        out.append("v2")
    return out


@pytest.fixture(params=_hierarchies())
def cgroup_mode(request, monkeypatch) -> str:
    """Run the test with the pod's cgroups in that hierarchy (inherited by the supervisor)."""
    monkeypatch.setenv("SANDBOX_CGROUP", request.param)
    return request.param


def sh(cmd: str) -> dict[int, list[str]]:
    return {0: ["/bin/sh", "-c", cmd]}


def alive(pid: int) -> bool:
    """A live process (not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sandbox", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def run_json(uuid: str) -> dict:
    return json.loads((pod.find(uuid)[1] / "run.json").read_text())


def running_pod(p: subprocess.Popen) -> str:
    """The UUID of the pod a `sandbox run` process started (its stderr says `pod UUID` after
    the prepare), once its app runs."""
    for line in p.stderr:
        if line.startswith("pod "):
            uuid = line.split()[1]
            break
    else:
        raise AssertionError(f"`sandbox run` exited with {p.wait()} before it named its pod")
    eventually(lambda: pod.status(uuid), lambda st: st["state"] == "run" and st["apps"]
               and st["apps"][0]["state"] == "running", what="the pod running")
    return uuid


def assert_nothing_left(uuid: str, pids: list[int]) -> None:
    """No process, netns, cgroup or CNI cache entry of the pod is left."""
    eventually(lambda: [p for p in pids if alive(p)], lambda left: not left,
               what="every process of the pod gone")
    assert not netns.exists(pod.netns_name(uuid))
    assert not cgroups.PodCgroups(uuid).dirs()
    results = Path(os.environ["SANDBOX_DIR"]) / "cni" / "results"
    assert not results.exists() or not [f for f in results.iterdir() if uuid in f.name]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_foreground_run_forwards_a_stop_and_exits_with_the_pods_status(
        pod_state: Path, stop_pods, sig: int) -> None:
    """`timeout`, a closed terminal, a service manager or `kill PID` signal the `run` process:
    the pod stops and `run` exits with the pod's status (143: the app ended by SIGTERM)."""
    p = cli("run", "example.com/busybox", "--net=default", "--exec",
            "/bin/sh -c 'echo up; sleep 60'")
    uuid = running_pod(p)
    stop_pods.append(uuid)
    # (the app counts as running from its runner's start: wait until it has printed)
    eventually(lambda: pod.logs(uuid)["busybox"]["stdout"], what="the app's first line")
    pids = [pr["pid"] for pr in pod.status(uuid)["processes"]]
    assert len(pids) >= 3             # supervisor, PID 1, the app
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 143, err
    assert "[busybox] up" in out
    st = pod.status(uuid)
    assert st["state"] == "exited-garbage" and st["apps"][0]["exitCode"] == 143
    assert_nothing_left(uuid, pids)


def test_a_killed_foreground_run_takes_its_pod_with_it(pod_state: Path, stop_pods) -> None:
    """SIGKILL cannot be forwarded: the supervisor sees its owner end and stops the pod."""
    p = cli("run", "example.com/busybox", "--net=default", "--exec", "/bin/sh -c 'sleep 60'")
    uuid = running_pod(p)
    stop_pods.append(uuid)
    pids = [pr["pid"] for pr in pod.status(uuid)["processes"]]
    p.kill()
    p.communicate()
    eventually(lambda: pod.find(uuid)[0], lambda s: s == "exited-garbage",
               what="the pod stopped by its supervisor")
    assert pod.status(uuid)["error"] is None and pod.status(uuid)["exitCode"] == 143
    assert_nothing_left(uuid, pids)


def test_a_foreground_run_whose_supervisor_is_killed_collects_its_pod(
        pod_state: Path, stop_pods) -> None:
    p = cli("run", "example.com/busybox", "--net=default", "--exec", "/bin/sh -c 'sleep 60'")
    uuid = running_pod(p)
    stop_pods.append(uuid)
    pids = [pr["pid"] for pr in pod.status(uuid)["processes"]]
    os.kill(run_json(uuid)["supervisor"], signal.SIGKILL)
    out, err = p.communicate(timeout=30)
    assert p.returncode != 0 and "its supervisor ended" in err and "Traceback" not in err
    assert pod.find(uuid)[0] == "exited-garbage"
    assert_nothing_left(uuid, pids)


def test_every_pod_is_in_its_own_cgroup_and_status_shows_its_processes(
        pod_state: Path, store: Store, stop_pods, cgroup_mode: str) -> None:
    p = pod.run(store, ["example.com/busybox"], net=["none"], detach=True,
                exec_=sh("sleep 300 & sleep 300"))
    stop_pods.append(p.uuid)
    groups = cgroups.PodCgroups(p.uuid)
    assert groups.hierarchy.version == (2 if cgroup_mode == "v2" else 1)
    procs = eventually(lambda: pod.status(p.uuid)["processes"],
                       lambda ps: len([x for x in ps if x["cmd"] == "sleep 300"]) == 2,
                       what="both sleeps listed")
    by_group = {}
    for pr in procs:
        by_group.setdefault(pr["group"], []).append(pr["pid"])
    # the supervisor alone in its group; PID 1 and the app (no limits: no group of its own) in
    # stage1's, where they were born
    assert set(by_group) == {"supervisor", "stage1"}
    assert by_group["supervisor"] == [run_json(p.uuid)["supervisor"]]
    assert run_json(p.uuid)["stage1"] in by_group["stage1"]
    assert not groups.apps.exists()
    sleeps = [x["pid"] for x in procs if x["cmd"] == "sleep 300"]
    assert set(sleeps) <= set(by_group["stage1"])
    # the kernel's own record agrees: /proc/PID/cgroup of each sleep names stage1's group
    line = "0::" if cgroup_mode == "v2" else ":freezer:"
    for pid in sleeps:
        assert f"{line}/sandbox/{p.uuid}/stage1\n" in Path(f"/proc/{pid}/cgroup").read_text()
    # `sandbox status` shows them
    out = subprocess.run([sys.executable, "-m", "sandbox", "status", p.uuid], capture_output=True,
                         text=True).stdout
    assert len([l for l in out.splitlines() if "stage1" in l and "sleep 300" in l]) == 2
    pids = [pr["pid"] for pr in procs]
    pod.stop(p.uuid)
    assert_nothing_left(p.uuid, pids)


def test_the_last_cgroups_go_with_the_owner_or_with_gc(pod_state: Path, store: Store,
                                                       stop_pods, cgroup_mode: str) -> None:
    """A foreground pod's supervisor ends in its own group (no move out on the way to the exit):
    the `run` that owns it removes that group and the pod's once it has reaped it; an owner
    that ends first (killed) leaves them empty, and gc removes them."""
    for owner_finishes in (True, False):
        p = pod.prepare(store, ["example.com/busybox"], net=["none"], exec_=sh("exit 0"))
        stop_pods.append(p.uuid)
        _, sup = pod.start(p.uuid, attached=True)       # this test process owns the pod
        assert sup.wait() == 0
        groups = cgroups.PodCgroups(p.uuid)
        # the payload's groups went before the pod was reported exited; these two are left
        left = {d.relative_to(groups.top) for d in groups.top.rglob("*") if d.is_dir()}
        assert left == {Path("supervisor")} and not cgroupfs.procs(groups.top)
        if owner_finishes:
            assert pod.finish_attached(p.uuid, 0) == 0
        else:
            assert any(f"pod {p.uuid}: its last (empty) cgroups removed" == line
                       for line in pod.gc())
        assert not groups.dirs()


def test_an_exiting_supervisor_is_not_a_process_left_behind() -> None:
    """Between reporting its pod exited and its own exit the supervisor is still in its group:
    status and stop do not count it as left behind (a recycled pid is, by its start time)."""
    from sandbox._sys import proc
    me = os.getpid()
    run = {"supervisor": me, "supervisorStart": proc.start_time(me)}
    assert pod._left_behind([me, 4242], run) == [4242]
    assert pod._left_behind([me], run) == []
    assert pod._left_behind([me, 4242], {**run, "supervisorStart": 1}) == [me, 4242]


def test_while_a_process_lives_the_pod_is_not_exited_and_gc_kills_it(
        pod_state: Path, store: Store, stop_pods, cgroup_mode: str) -> None:
    """The supervisor dies; the apps (one ignores SIGTERM, one left its session) keep running:
    status and list say so, and gc kills every one of them by cgroup and undoes the rest."""
    p = pod.run(store, ["example.com/busybox"], net=["default"], detach=True,
                exec_=sh("trap '' TERM; setsid sleep 300 & sleep 300"))
    stop_pods.append(p.uuid)
    eventually(lambda: pod.status(p.uuid)["processes"],
               lambda ps: len([x for x in ps if x["cmd"] == "sleep 300"]) == 2)
    os.kill(run_json(p.uuid)["supervisor"], signal.SIGKILL)
    # (its lock goes when its last thread has exited, which may be after it shows as a zombie)
    st = eventually(lambda: pod.status(p.uuid), lambda st: "supervisor gone" in st["state"],
                    what="the pod's lock released")
    assert not st["state"].startswith("exited")
    assert [x["state"] for x in pod.list_pods() if x["uuid"] == p.uuid][0] == st["state"]
    assert st["apps"][0]["state"] == "running"
    pids = [pr["pid"] for pr in st["processes"]]
    assert len(pids) >= 3             # PID 1 and the two sleeps (and sh while it waits)
    report = pod.gc(grace=0)
    assert any(re.search(r"killed [3-9] process\(es\) by cgroup", line) for line in report)
    assert_nothing_left(p.uuid, pids)


def test_stop_of_a_pod_whose_supervisor_died_collects_it(
        pod_state: Path, store: Store, stop_pods) -> None:
    p = pod.run(store, ["example.com/busybox"], net=["default"], detach=True,
                exec_=sh("sleep 300"))
    stop_pods.append(p.uuid)
    pids = [pr["pid"] for pr in pod.status(p.uuid)["processes"]]
    os.kill(run_json(p.uuid)["supervisor"], signal.SIGKILL)
    eventually(lambda: pod.status(p.uuid)["state"], lambda s: "supervisor gone" in s)
    t0 = time.monotonic()
    st = pod.stop(p.uuid)
    assert time.monotonic() - t0 < 5
    assert st["state"] == "exited-garbage" and "supervisor" in st["error"]
    assert_nothing_left(p.uuid, pids)


def test_stop_kills_by_cgroup_what_ignores_sigterm(pod_state: Path, store: Store,
                                                   stop_pods, cgroup_mode: str) -> None:
    p = pod.run(store, ["example.com/busybox"], net=["none"], detach=True,
                exec_=sh("trap '' TERM; (trap '' TERM; sleep 300) & sleep 300"))
    stop_pods.append(p.uuid)
    eventually(lambda: pod.status(p.uuid)["processes"],
               lambda ps: len([x for x in ps if x["cmd"] == "sleep 300"]) == 2)
    pids = [pr["pid"] for pr in pod.status(p.uuid)["processes"]]
    t0 = time.monotonic()
    st = pod.stop(p.uuid, timeout=1)
    assert st["state"] == "exited-garbage" and time.monotonic() - t0 < 10
    assert_nothing_left(p.uuid, pids)


@pytest.fixture
def slow_network(tmp_path: Path) -> dict[str, str]:
    """A CNI network whose ADD takes 3 s (a wrapper around the kit's bridge plugin): a pod on it
    stays in set-up long enough to be stopped there."""
    bindir = tmp_path / "cni-bin"
    bindir.mkdir()
    plugin = bindir / "sbxslow"
    plugin.write_text(f'#!/bin/sh\n[ "$CNI_COMMAND" = ADD ] && sleep 3\nexec {plugin_dir()}/bridge\n')
    plugin.chmod(0o755)
    conf = tmp_path / "net.d"
    conf.mkdir()
    name = f"sbxslow{os.getpid() % 10000}"
    (conf / "10-slow.conf").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": name, "type": "sbxslow", "bridge": f"sbxsl{os.getpid() % 10000}",
        "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.124.0.0/24"}}))
    return {"net": name, "conf_dir": str(conf), "cni_path": f"{bindir}:{plugin_dir()}"}


def _in_set_up(uuid: str) -> bool:
    state, d = pod.find(uuid)
    return state == "run" and any(n.get("result") is None
                                  for n in json.loads((d / "run.json").read_text())["networks"])


@pytest.mark.serial       # the stop is answered within 8 s
def test_a_stop_during_set_up_unwinds_it(pod_state: Path, store: Store, stop_pods,
                                         slow_network: dict[str, str]) -> None:
    """Today's KeyError: 'stage1' — a stop that arrives while the supervisor is still attaching
    the network ends the set-up at its next step and undoes what exists."""
    p = pod.prepare(store, ["example.com/busybox"], net=[slow_network["net"]],
                    conf_dir=slow_network["conf_dir"], cni_path=slow_network["cni_path"],
                    exec_=sh("sleep 60"))
    stop_pods.append(p.uuid)
    pod.start(p.uuid)
    eventually(lambda: _in_set_up(p.uuid), what="the pod in its CNI ADD")
    t0 = time.monotonic()
    st = pod.stop(p.uuid)
    assert time.monotonic() - t0 < 8            # the ADD finishes, nothing after it starts
    assert st["state"] == "exited-garbage" and st["error"] == "stopped by SIGTERM during set-up"
    assert st["exitCode"] == 128 + signal.SIGTERM and st["apps"][0]["state"] == "not started"
    assert_nothing_left(p.uuid, [])
    state = Path(os.environ["SANDBOX_DIR"])
    reserved = state / "cni" / "networks" / slow_network["net"]
    assert not [f for f in reserved.iterdir() if f.name[0].isdigit()]   # the IP was released


def test_reset_during_a_set_up_is_no_traceback(pod_state: Path, store: Store, stop_pods,
                                               slow_network: dict[str, str], run_cli) -> None:
    p = pod.prepare(store, ["example.com/busybox"], net=[slow_network["net"]],
                    conf_dir=slow_network["conf_dir"], cni_path=slow_network["cni_path"],
                    exec_=sh("sleep 60"))
    stop_pods.append(p.uuid)
    pod.start(p.uuid)
    eventually(lambda: _in_set_up(p.uuid), what="the pod in its CNI ADD")
    rc, out, err = run_cli("reset", "--yes", "--prefix", f"sbx-{os.getpid()}-none")
    assert rc == 0 and "Traceback" not in err, err
    assert f"stopped pod {p.uuid}" in out
    assert pod.list_pods() == []


def test_gc_removes_a_pod_whose_run_ended_before_starting_it(pod_state: Path, store: Store) -> None:
    """`sandbox run` prepares, then starts: killed in between, it leaves a prepared pod that
    nobody will run. A pod from `sandbox prepare` stays (it waits for `run-prepared`)."""
    runner = subprocess.Popen(["sleep", "60"])      # stands for the `sandbox run` process
    orphan = pod.prepare(store, ["example.com/busybox"], net=["none"], _run_by=runner.pid)
    runner.kill()
    runner.wait()
    kept = pod.prepare(store, ["example.com/busybox"], net=["none"])
    report = pod.gc(grace=0)
    assert f"pod {orphan.uuid}: removed (garbage)" in report
    assert pod.find(kept.uuid)[0] == "prepared"
    pod.remove(kept.uuid)
