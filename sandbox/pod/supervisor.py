"""The pod's supervisor: stage0 at run time, one process per running pod.

:func:`sandbox.pod.stage0.start` forks it (or, where forking is unsafe, execs
``python -m sandbox.pod.supervisor UUID [--owner PID]``). It holds the flock of the pod's
directory while the pod runs, so "locked in run/" means running and "unlocked in run/" means
the supervisor died (``sandbox gc`` and ``stop`` clean up after it).

**Set-up is one stack of undo steps** (:class:`contextlib.ExitStack`). Each step registers how
to undo itself *before* it makes its resource, so a failure, a stop or a crash of a plugin at any
point unwinds exactly what exists, in reverse order, and each undo that fails is recorded
(``teardownErrors``) without stopping the others:

1. the pod's cgroups (:mod:`sandbox.pod.cgroups`); the supervisor is in the pod's ``stage1``
   group (forked there, or it joins it), so PID 1 is born there and the CNI plugins it runs
   are in the pod's tree too — undo: kill what is left of the payload and remove its groups;
   the groups the supervisor is in itself go when it has ended (see :mod:`~sandbox.pod.cgroups`);
2. the pod's netns — undo: delete it;
3. each network: its CNI DEL registered and the attachment recorded in ``run.json`` (so a
   ``gc`` after a crash can DEL it too), *then* CNI ADD;
4. ``lo`` up and the metadata socket bound in the netns — undo: close it;
5. ``stage1.json`` and the pod's PID 1 (:mod:`sandbox.pod.stage1`) — undo: kill every process
   of the pod but the supervisor, by cgroup, and reap PID 1;
6. the supervisor's move to its own group, made by a helper thread while PID 1 works — undo:
   wait for it; the metadata service — undo: stop it;

then it waits for PID 1 and unwinds; the pod moves to ``exited-garbage`` with its exit code.

**Signals.** SIGTERM, SIGINT and SIGHUP are handled from the first line, before any resource
exists: during set-up a stop ends it at the next step (the stack unwinds); once PID 1 runs it is
forwarded there (stage1 forwards it to every app), and if the pod has not ended
:data:`STOP_GRACE` seconds later its processes are killed by cgroup. A foreground
``sandbox run`` is the pod's *owner*: when that process ends — even by SIGKILL — the supervisor
stops the pod the same way (rkt: the run process *is* the pod; podman's ``--sig-proxy``).
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from pathlib import Path

from sandbox import config
from sandbox.pod import ace, cgroups, journal
from sandbox.pod.stage0 import (
    DEFAULT_NET,
    _locked,
    _move,
    default_network,
    netns_name,
    node_name,
    pods_dir,
    write_json,
)

TYPE_CHECKING = False   # typing is for annotations only: importing it costs ~2 ms per pod start
if TYPE_CHECKING:
    from typing import Any, Callable

STOP_GRACE = 10.0        # seconds a stopped pod gets before its processes are killed
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(Exception):
    """A stop arrived during set-up: what exists is unwound."""

    def __init__(self, sig: int, why: str) -> None:
        super().__init__(why)
        self.signal = sig


class _Stop:
    """What the supervisor does with SIGTERM/SIGINT/SIGHUP and with its owner's end."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.why = ""
        self.pid1: int | None = None        # forward to the pod's PID 1 once it runs
        self.deadline: float | None = None  # then kill the pod by cgroup
        self.wakeup = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def install(self) -> None:
        for s in STOP_SIGNALS:
            signal.signal(s, self._on_signal)
        # a signal also wakes the wait for PID 1 (select on this pipe): it recomputes its deadline
        signal.set_wakeup_fd(self.wakeup[1], warn_on_full_buffer=False)

    def _on_signal(self, sig: int, _frame: Any) -> None:
        self.request(sig, f"stopped by {signal.Signals(sig).name}")

    def request(self, sig: int, why: str) -> None:
        if self.signal is None:
            self.signal, self.why = sig, why
            self.deadline = time.monotonic() + STOP_GRACE
        if self.pid1 is not None:
            _kill(self.pid1, signal.SIGTERM)

    def forward_to(self, pid1: int) -> None:
        """PID 1 runs: forward stops to it from now on, and a stop that came already now."""
        self.pid1 = pid1
        if self.signal is not None:
            _kill(pid1, signal.SIGTERM)

    def check(self) -> None:
        """Between two set-up steps: raise Stopped if a stop arrived."""
        if self.signal is not None:
            raise Stopped(self.signal, f"{self.why} during set-up")


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _owner_fd(owner: int | None, stop: _Stop) -> int | None:
    """A pidfd on the foreground ``sandbox run`` that owns the pod (it is our parent), or None.
    Already gone: stop at once."""
    if owner is None:
        return None
    try:
        fd = os.pidfd_open(owner)
    except ProcessLookupError:
        fd = None
    if fd is None or os.getppid() != owner:     # the pid is no longer our parent's
        stop.request(signal.SIGTERM, "its `sandbox run` ended")
        if fd is not None:
            os.close(fd)
        return None
    return fd


def _undo(info: dict[str, Any], what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
    """One undo step: run it; a failure is recorded and the next steps still run."""
    try:
        fn(*args, **kw)
    except Exception as e:  # noqa: BLE001 - recorded for `sandbox status`; gc retries
        info.setdefault("teardownErrors", []).append(f"{what}: {e}")


def supervise(uuid: str, owner: int | None = None) -> int:
    """The supervisor process (see the module docstring). Returns the pod's exit code."""
    # The metadata server is built in a thread while the pod runs (~30 ms of imports, all
    # Python, holding the GIL). The other threads need the GIL only for a moment now and then
    # (this one at PID 1's exit and in the teardown, the helper that moves it to its own
    # group), but each time waited for up to CPython's 5 ms switch interval behind the build
    # (13 ms seen for the move alone under load): a shorter interval bounds those waits. This
    # process does no other Python work.
    sys.setswitchinterval(0.0005)
    stop = _Stop()
    stop.install()                                  # before the first resource exists
    d = pods_dir() / "prepared" / uuid
    with _locked(d):
        from sandbox._sys import proc as _proc
        info: dict[str, Any] = {"supervisor": os.getpid(), "supervisorStart": _proc.start_time(),
                                "started": time.time(), "networks": []}
        if owner is not None:
            info["owner"] = owner
        write_json(d / "run.json", info)            # `stop` finds the supervisor from here on
        run_dir = _move(d, "run")
        if journal.wanted(run_dir):                 # a stepper asked (stage0.run_prepared)
            journal.open_for(run_dir)
            journal.note("supervisor", "fork", "stage0's supervisor",
                         note="forked by stage0; it sets the pod up and waits for it")
        code = 1
        try:
            with contextlib.ExitStack() as undo:
                code = _set_up_and_wait(uuid, run_dir, info, undo, stop, _owner_fd(owner, stop),
                                        owner)
        except Stopped as e:
            info["error"] = str(e)
            code = 128 + e.signal
        except Exception as e:  # noqa: BLE001 - recorded; the pod ends in exited-garbage
            info["error"] = str(e)
            print(f"sandbox: pod {uuid}: {e}", file=sys.stderr)
        if code != 0 and "error" not in info:
            from sandbox.pod import stage1
            why = stage1.failure(run_dir)
            if why:
                info["error"] = (f"{why.rstrip('.')}; the pod's PID 1 failed, so its apps did not "
                                 "all run: `sandbox rm` it and prepare it again with that fixed.")
        info["finished"] = time.time()
        info["exitCode"] = code
        info["tornDown"] = not info.get("teardownErrors")   # else gc finishes the teardown
        write_json(run_dir / "run.json", info)
        _move(run_dir, "exited-garbage")
    return code


def _set_up_and_wait(uuid: str, run_dir: Path, info: dict[str, Any], undo: contextlib.ExitStack,
                     stop: _Stop, owner_fd: int | None, owner: int | None = None) -> int:
    # Long on purpose: the six steps of the module docstring in their order, each registering
    # its undo before it makes its resource; split up, that order would no longer be visible.
    from sandbox.net import netns
    from sandbox.pod import metadata
    plan = json.loads((run_dir / "plan.json").read_text())
    manifest = json.loads((run_dir / "pod-manifest.json").read_text())
    save = lambda: write_json(run_dir / "run.json", info)  # noqa: E731

    # 1. cgroups: the supervisor is in stage1's group (forked there: cgroups.Claim); PID 1 and
    # the CNI plugins it runs are born there
    groups = cgroups.PodCgroups(uuid)
    undo.callback(_undo, info, "cgroups", _remove_cgroups, groups, info, owner)
    joins = groups.create({a["name"]: cgroups.Limits(**a["limits"]) for a in plan["apps"]})
    home = _join(groups)
    info["cgroup"] = str(groups.top)
    info["cgroupHome"] = str(home)
    journal.note("supervisor", "cgroup", str(groups.top),
                 note="the pod's cgroup: stage1 (PID 1 and the apps), supervisor, apps/<app> "
                      "for an app with limits; the supervisor starts in stage1")
    stop.check()

    # 2. the pod's netns
    nets = plan["net"]
    ns_path: str | None = None
    if nets != ["host"]:
        name = netns_name(uuid)
        undo.callback(_undo, info, "netns", netns.delete, name, missing_ok=True)
        ns_path = str(netns.create(name))
        info["netns"] = ns_path
        journal.note("supervisor", "netns", ns_path, inode=netns.ns_inode(ns_path),
                     note="the pod's network namespace: a helper thread unshares, bind-mounts it")
        stop.check()

    # 3. networks: DEL registered before ADD, the attachment recorded for gc
    if nets not in (["host"], ["none"]):
        rt_default, rt_user = _network_runtime(plan)
        for i, net in enumerate(nets):
            rt = rt_default if net == "default" else rt_user
            conf = rt.network(DEFAULT_NET if net == "default" else net)
            entry = {"net": conf.name, "ifname": f"eth{i}", "config": conf.bytes.decode(),
                     "result": None}
            info["networks"].append(entry)
            save()
            undo.callback(_undo, info, f"CNI DEL {conf.name} eth{i}", rt.delete, conf, ns_path,
                          container_id=uuid, ifname=f"eth{i}")
            entry["result"] = rt.add(conf, ns_path, container_id=uuid, ifname=f"eth{i}")
            save()
            journal.note("supervisor", "cni", f"ADD {conf.name} eth{i}",
                         ips=[ip.get("address") for ip in entry["result"].get("ips", [])],
                         note="CNI: the bridge plugin puts a veth end in the pod's netns")
            stop.check()

    # 4. lo up and the metadata socket bound in the pod's netns before stage1 starts: the apps'
    # AC_METADATA_URL is known and connections queue; the server is built after stage1 is
    # forked (early callers wait in the backlog).
    sock = _lo_up_and_listen(ns_path) if ns_path else metadata.listen()
    undo.callback(_undo, info, "metadata socket", sock.close)
    token = metadata.new_token()
    info["metadataURL"] = url = metadata.url_for(sock, token)
    journal.note("supervisor", "listen", url.rsplit("/", 1)[0] + "/<token>",
                 note="lo up in the pod's netns; the metadata socket bound there")
    stop.check()

    # 5. stage1, the pod's PID 1
    hosts = ace.hosts_content(plan["hostname"])
    for a in plan["apps"]:
        a["cgroups"] = joins[a["name"]]
        a["env"] = ace.app_environment(a["environment"], a["name"], url)
        a["hosts"] = hosts
    plan["stage1Cgroups"] = [str(groups.stage1)]
    plan["journal"] = journal.wanted(run_dir)
    (run_dir / "stage1.json").write_text(json.dumps(plan, indent=2))
    stage1 = _start_stage1(run_dir, ns_path)
    journal.note("supervisor", "fork", f"the pod's PID 1 (host pid {stage1.pid})",
                 note="unshare(CLONE_NEWPID), fork: the child is PID 1 of a new PID namespace")
    pid1_fd = os.pidfd_open(stage1.pid)
    undo.callback(_undo, info, "stage1", _end_stage1, stage1, pid1_fd, groups)
    # PID 1 runs: from now on a stop goes to it (its apps get SIGTERM and STOP_GRACE), it no
    # longer unwinds the set-up — an app may already be running (a detached `run` returns as
    # soon as its apps have started, and may be stopped at once)
    stop.forward_to(stage1.pid)
    info["stage1"] = stage1.pid
    save()

    # 6. the metadata service, and the supervisor out of stage1, where PID 1 was born (then it
    # can kill the payload by cgroup). The move waits for an RCU grace period (up to ~15 ms
    # under load), so a helper thread makes it while PID 1 works, under way before the
    # server's build begins: that build holds the GIL (its first import is one ~7 ms C call),
    # and this thread, when it moved itself after starting the build, got to the move 5-18 ms
    # late — after a short pod had ended, whose teardown then waited for the move (and after
    # the apps had started: `status` showed the supervisor in stage1). The teardown waits for
    # the helper first (registered here, undone after the metadata service is stopped).
    # A process left in stage1 by a failed move is moved by the teardown itself (_end_stage1,
    # _remove_cgroups).
    from sandbox._sys.cgroupfs import Move
    move = Move(groups.supervisor, until_under_way=True)
    undo.callback(_undo, info, "move out of stage1", move.wait)
    apps_meta = {}
    for a in plan["apps"]:
        apps_meta[a["name"]] = {"image_id": a["imageID"],
                                "image_manifest": a.get("imageManifest") or _image_manifest(a["imageID"]),
                                "annotations": next((x.get("annotations") for x in manifest["apps"]
                                                     if x["name"] == a["name"]), None) or []}
    svc = metadata.MetadataService(sock, token=token, uuid=uuid, pod_manifest=manifest,
                                   apps=apps_meta)
    svc.start()
    journal.note("supervisor", "thread", "the metadata service",
                 note="a thread of the supervisor answers on the pod's loopback")
    undo.callback(_stop_metadata, svc, info)
    return _wait(stage1, pid1_fd, owner_fd, stop, groups)


def _join(groups: cgroups.PodCgroups) -> Path:
    """Be in the pod's stage1 group (forked there by stage0, see cgroups.Claim, or join it now);
    returns the group to go back to when the supervisor removes the pod's groups itself."""
    from sandbox._sys import cgroupfs
    if cgroupfs.is_in(groups.stage1):
        return groups.hierarchy.root
    home = cgroupfs.group_of(os.getpid(), groups.hierarchy)
    cgroupfs.join(groups.stage1)
    return home


def _remove_cgroups(groups: cgroups.PodCgroups, info: dict[str, Any], owner: int | None) -> None:
    """Kill whatever is left of the payload and remove its groups (stage1, apps). The groups
    the supervisor is in itself (its own and the pod's) are left to the foreground ``sandbox
    run`` that owns the pod and reaps it (stage0.finish_attached): leaving them would be a move,
    a grace period on the way to the pod's exit. With no owner (detached), or set-up cut short
    while still in stage1, the supervisor moves back out and removes them all."""
    from sandbox._sys import cgroupfs
    if owner is not None and os.getppid() == owner and cgroupfs.is_in(groups.supervisor):
        left = groups.remove_payload()
    else:
        home = Path(info.get("cgroupHome") or groups.hierarchy.root)
        try:
            cgroupfs.join(home if home.is_dir() else groups.hierarchy.root)
        except OSError:
            cgroupfs.join(groups.hierarchy.root)
        left = groups.remove()
    if left:
        raise cgroups.CgroupError(f"cgroups still busy: {', '.join(left)}")


def _end_stage1(stage1: Any, pid1_fd: int, groups: cgroups.PodCgroups) -> None:
    """Undo of step 5: PID 1 and every process of the pod but the supervisor die (by cgroup:
    nothing forked escapes), and PID 1 is reaped."""
    from sandbox._sys import cgroupfs
    from sandbox._sys import proc as _proc
    if _proc.wait_for(stage1, 0) is None:
        if cgroupfs.is_in(groups.stage1):   # set-up failed before the supervisor moved out
            cgroupfs.join(groups.supervisor)
        groups.kill_payload()
        stage1.wait()
    os.close(pid1_fd)


def _stop_metadata(svc: Any, info: dict[str, Any]) -> None:
    _undo(info, "metadata service", svc.stop)
    info["metadataRequests"] = svc.requests
    info["metadataRequestCount"] = svc.request_count


def _wait(stage1: Any, pid1_fd: int, owner_fd: int | None, stop: _Stop,
          groups: cgroups.PodCgroups) -> int:
    """Wait for the pod's PID 1; meanwhile forward stops to it, stop the pod when its owner
    ends, and kill it by cgroup when a stop has not ended it within STOP_GRACE seconds."""
    fds = [pid1_fd, stop.wakeup[0]] + ([owner_fd] if owner_fd is not None else [])
    try:
        while True:
            timeout = None if stop.deadline is None else max(0.0, stop.deadline - time.monotonic())
            ready = select.select(fds, [], [], timeout)[0]
            if pid1_fd in ready:
                return stage1.wait()
            if stop.wakeup[0] in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(stop.wakeup[0], 64)
            if owner_fd is not None and owner_fd in ready:
                fds.remove(owner_fd)
                stop.request(signal.SIGTERM, "its `sandbox run` ended")
            if stop.deadline is not None and time.monotonic() >= stop.deadline:
                groups.kill_payload()       # PID 1 ends now: the select sees it
                stop.deadline = None
    finally:
        if owner_fd is not None:
            os.close(owner_fd)


def _network_runtime(plan: dict[str, Any]) -> tuple[Any, Any]:
    """The CNI runtimes of a pod: the kit's default network (conf in the state dir) and the
    user's (``--conf-dir``), both running their plugins in the state dir's node netns."""
    from sandbox.net import netns
    from sandbox.net.cni import Runtime
    from sandbox.net.plugins import plugin_dir
    state = config.sandbox_dir()
    conf_dir = state / "net.d"
    conf_dir.mkdir(parents=True, exist_ok=True)
    default = conf_dir / f"99-{DEFAULT_NET}.conflist"
    if not default.exists():
        default.write_text(json.dumps(default_network(), indent=2))
    node = node_name(state)
    netns.node_ensure(node)                 # made by the first pod, or a stale handle replaced
    cni_path = plan.get("cniPath") or str(plugin_dir())
    rt_default = Runtime(conf_dir=conf_dir, cni_path=cni_path, cache_dir=state / "cni",
                         node=node, plugin_state_dir=state / "cni")
    rt_user = Runtime(conf_dir=plan.get("confDir") or "/etc/cni/net.d", cni_path=cni_path,
                      cache_dir=state / "cni", node=node, plugin_state_dir=state / "cni")
    return rt_default, rt_user


def _lo_up_and_listen(ns_path: str) -> Any:
    """``lo`` up in the pod's netns and the metadata service's socket bound there (a socket
    stays in the netns it was made in), by this thread, which is in the pod's netns for the
    moment (netns.enter: setns there and back; it moves only the calling thread). The
    supervisor is single-threaded here: no helper thread is needed (one was, a thread start
    and two hand-overs per pod start)."""
    from sandbox.net import netns
    from sandbox.pod import metadata
    with netns.enter(ns_path):
        netns.lo_up()
        return metadata.listen()


def _image_manifest(image_id: str) -> dict[str, Any]:
    from sandbox.image.store import Store
    return Store().get(image_id).manifest.to_json()


def _start_stage1(run_dir: Path, ns_path: str | None) -> Any:
    """Start the pod's PID 1 (stage1) in the pod's netns and fresh PID, IPC, UTS and mount
    namespaces.

    While the supervisor is single-threaded (the metadata thread starts after), it forks PID 1
    itself: unshare(CLONE_NEWPID) makes its *next* child PID 1 of a new namespace, then setns
    back to its own PID namespace undoes that for later children and threads. Otherwise it
    execs ``python -m sandbox.pod.stage1 run``, which unshares and forks PID 1 (one more process).
    """
    from sandbox._sys import libc
    from sandbox._sys import proc as _proc
    from sandbox.pod import stage1
    log = str(run_dir / "stage1.log")
    if _proc.can_fork():
        def pid1() -> int:
            _join_pod_namespaces(ns_path, pid=False)
            return stage1.pid1(run_dir)
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.unshare(libc.CLONE_NEWPID)
            try:
                return _proc.fork_call(pid1, args=f"stage1 {run_dir.name}", output=log)
            finally:
                libc.setns(own, libc.CLONE_NEWPID)
        finally:
            os.close(own)
    import subprocess
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "sandbox.pod.stage1", "run", str(run_dir)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: _join_pod_namespaces(ns_path))


def _join_pod_namespaces(ns_path: str | None, pid: bool = True) -> None:
    """Join the pod's netns, then unshare IPC, UTS and mount namespaces (and PID, whose new
    namespace applies to the caller's children: stage1 then forks the pod's PID 1)."""
    from sandbox._sys import libc
    if ns_path is not None:
        fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(fd, libc.CLONE_NEWNET)
        finally:
            os.close(fd)
    libc.unshare(libc.CLONE_NEWIPC | libc.CLONE_NEWUTS | libc.CLONE_NEWNS
                 | (libc.CLONE_NEWPID if pid else 0))


def main(argv: list[str]) -> int:
    if len(argv) in (1, 3) and (len(argv) == 1 or argv[1] == "--owner"):
        return supervise(argv[0], int(argv[2]) if len(argv) == 3 else None)
    print("usage: python -m sandbox.pod.supervisor UUID [--owner PID]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
