"""A running pod as the kernel sees it (pods.md: shared PID/net/IPC/UTS namespaces; ace.md: each
app chrooted into its own filesystem), read from ``/proc`` — for notebooks and pictures.

:func:`inspect` combines :func:`sandbox.pod.stage0.status` with what ``/proc/PID`` says about every
process of the pod: namespace inodes (``/proc/PID/ns/*``), its PID inside the pod (``NSpid`` in
``/proc/PID/status``), parent, command line, and for each app its mount table
(``/proc/PID/mountinfo``, paths as the app sees them after ``pivot_root``) and interfaces
(``/proc/PID/net/dev``, which shows the netns of that process). Nothing is changed.
"""
from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

from sandbox._sys import mountinfo

NS_TYPES = ("mnt", "pid", "net", "ipc", "uts", "cgroup", "user")


def ns_inodes(pid: int | str) -> dict[str, int]:
    """{namespace type: inode} of a process (``readlink /proc/PID/ns/TYPE`` is ``type:[inode]``)."""
    out = {}
    for t in NS_TYPES:
        try:
            out[t] = int(re.search(r"\[(\d+)\]", os.readlink(f"/proc/{pid}/ns/{t}")).group(1))
        except (OSError, AttributeError):
            pass
    return out


def mounts(pid: int | str) -> list[dict[str, str]]:
    """The mount table of a process's mount namespace, as that process sees paths."""
    return [{"target": m.target, "root": m.root, "options": m.options, "fstype": m.fstype,
             "source": m.source} for m in mountinfo.mounts(pid)]


def interfaces(pid: int | str) -> list[str]:
    """Interface names in the network namespace of ``pid`` (``/proc/PID/net/dev``)."""
    try:
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return []
    return [line.split(":", 1)[0].strip() for line in lines]


def _proc(pid: int) -> dict[str, Any] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    nspid = fields.get("NSpid", str(pid)).split()
    return {"host_pid": pid, "pod_pid": int(nspid[-1]), "ppid": int(fields.get("PPid", "0")),
            "comm": fields.get("Name", "").strip(),
            "cmdline": " ".join(c.decode(errors="replace") for c in cmd if c),
            "uid": int(fields.get("Uid", "0").split()[0]), "ns": ns_inodes(pid)}


def _read_json(p: Path) -> dict[str, Any]:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def host_view() -> dict[str, Any]:
    """The same facts for the process asking (the notebook's kernel, on the host)."""
    return {"pid": os.getpid(), "ns": ns_inodes("self"), "hostname": socket.gethostname(),
            "interfaces": interfaces("self"), "root_mounts": len(mounts("self"))}


def inspect(uuid: str) -> dict[str, Any]:
    """Everything about a running pod's processes and namespaces:

    ``{"uuid", "state", "host", "supervisor", "relay", "init", "shared", "apps", "processes",
    "networks", "netns", "metadataURL"}`` — ``shared`` maps each namespace type to the inode the
    whole pod shares (or None when the apps differ); each app has its runner's and processes'
    PIDs, its own ``mnt`` inode, mounts, interfaces and ``ns``.
    """
    from sandbox.pod import stage0 as pod
    st = pod.status(uuid)
    _, d = pod.find(uuid)
    run = _read_json(d / "run.json")
    pids = (d / "stage1.pid").read_text().split() if (d / "stage1.pid").exists() else []
    # "RELAY PID1" when stage1 was exec'd (it forks PID 1 and relays), "PID1" when the supervisor
    # forked PID 1 straight into the new PID namespace
    relay = int(pids[0]) if len(pids) > 1 else None
    init = int(pids[-1]) if pids else None
    init_info = _proc(init) if init else None
    pod_pidns = init_info["ns"].get("pid") if init_info else None
    procs = []
    if pod_pidns:
        for name in os.listdir("/proc"):
            if name.isdigit():
                p = _proc(int(name))
                if p and p["ns"].get("pid") == pod_pidns:
                    procs.append(p)
    procs.sort(key=lambda p: p["pod_pid"])
    apps = []
    for a in st["apps"]:
        pj = _read_json(d / "apps" / a["name"] / "pid.json")
        runner = pj.get("host_pid")
        rinfo = _proc(runner) if runner and a["state"] == "running" else None
        if rinfo and rinfo["ns"].get("pid") != pod_pidns:    # the PID was reused: not ours
            rinfo = None
        mnt = rinfo["ns"].get("mnt") if rinfo else None
        mine = [p for p in procs if mnt and p["ns"].get("mnt") == mnt]
        # a runner that became its app (pid.json's becomesApp, once the app started) is the app;
        # the runner's other children are the app only between mainStarted and its exit code —
        # before, they are the pre-start handler (and after, post-stop), appc spec/ace.md
        # "Pod lifecycle: eventHandlers"
        status = _read_json(d / "apps" / a["name"] / "status.json")
        main_running = "mainStarted" in status and "exitCode" not in status
        became = pj.get("becomesApp") and "mainStarted" in status
        for p in mine:
            p["app"] = a["name"]
            if p["host_pid"] == runner:
                p["role"] = "app" if became else "runner"
            else:
                p["role"] = "app" if main_running else "handler"
        apps.append({"name": a["name"], "image": a["image"], "state": a["state"],
                     "exitCode": a.get("exitCode"), "runner": runner,
                     "pids": [p["host_pid"] for p in mine if p["role"] == "app"],
                     "pod_pids": [p["pod_pid"] for p in mine if p["role"] == "app"],
                     "ns": rinfo["ns"] if rinfo else {},
                     "mounts": mounts(runner) if rinfo else [],
                     "interfaces": interfaces(runner) if rinfo else []})
    for p in procs:
        if p["host_pid"] == init:
            p["role"], p["app"] = "init", None
        p.setdefault("role", "orphan")
        p.setdefault("app", None)
    running = [a for a in apps if a["ns"]]
    shared = {}
    for t in NS_TYPES:
        vals = {a["ns"].get(t) for a in running}
        shared[t] = vals.pop() if len(vals) == 1 else None
    return {"uuid": st["uuid"], "state": st["state"], "host": host_view(),
            "supervisor": _proc(run["supervisor"]) if run.get("supervisor") else None,
            "relay": _proc(relay) if relay else None, "init": init_info,
            "shared": shared, "apps": apps, "processes": procs,
            "networks": st["networks"], "netns": st.get("netns"),
            "host_veths": [i["name"] for n in run.get("networks", [])
                           for i in (n.get("result") or {}).get("interfaces", [])
                           if not i.get("sandbox") and i.get("mac") and i["name"].startswith("veth")],
            "metadataURL": st.get("metadataURL")}


def stages(info: dict[str, Any]) -> list[dict[str, Any]]:
    """rkt's three stages (slide 29) as this pod's own processes: stage0 (the supervisor the
    ``sandbox`` command forked, on the host), stage1 (the pod's PID 1), stage2 (the apps), with
    the PIDs on the host and in the pod and which namespaces each does *not* share with the host."""
    host = info["host"]["ns"]

    def own(p: dict[str, Any]) -> str:
        return ", ".join(t for t in ("pid", "net", "ipc", "uts", "mnt")
                         if p["ns"].get(t) and p["ns"].get(t) != host.get(t)) or "none (the host's)"

    rows = []
    for stage, what, p in (("stage0", "supervisor: decided everything, set up the netns and CNI, "
                                      "started stage1, waits and tears down", info.get("supervisor")),
                           ("stage1", "the pod's PID 1: mounts each app's rootfs, starts the apps, "
                                      "reaps orphans", info.get("init"))):
        if p:
            sup = info.get("supervisor") or {}
            forked = stage == "stage1" and p["cmdline"] == sup.get("cmdline")
            rows.append({"stage": stage, "what": what, "host PID": p["host_pid"],
                         "PID in the pod": p["pod_pid"] if stage != "stage0" else "-",
                         "own namespaces": own(p),
                         "command": "(forked from stage0: the same command line)" if forked
                         else p["cmdline"][:60]})
    for p in info.get("processes", []):
        if p.get("role") in ("app", "runner", "handler"):
            rows.append({"stage": "stage2", "what": f"app {p['app']}"
                         + {"runner": " (its runner)", "handler": " (an event handler)"}.get(p["role"], ""),
                         "host PID": p["host_pid"], "PID in the pod": p["pod_pid"],
                         "own namespaces": own(p), "command": p["cmdline"][:60]})
    return rows


def namespace_table(info: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per namespace type: the host's inode, PID 1's, and each app's — the "shared or
    not" table of pods.md."""
    rows = []
    for t in NS_TYPES:
        row: dict[str, Any] = {"namespace": t, "host": info["host"]["ns"].get(t),
                               "pod PID 1": (info["init"] or {}).get("ns", {}).get(t)}
        for a in info["apps"]:
            if a["ns"]:          # running apps only: an exited app has no namespaces any more
                row[a["name"]] = a["ns"].get(t)
        vals = {a["ns"].get(t) for a in info["apps"] if a["ns"]}
        row["apps share it"] = len(vals) == 1
        row["same as host"] = vals == {info["host"]["ns"].get(t)}
        rows.append(row)
    return rows


def wait_for_app(uuid: str, app: str, state: str = "exited", timeout: float = 30.0) -> dict[str, Any]:
    """Wait until ``app`` of the pod reaches ``state`` (e.g. the register app has exited);
    returns that app's status."""
    import time

    from sandbox.pod import stage0 as pod
    deadline = time.monotonic() + timeout
    while True:
        a = next((x for x in pod.status(uuid)["apps"] if x["name"] == app), None)
        if a is None:
            raise pod.PodError(f"the pod {uuid} has no app '{app}'.")
        if a["state"] == state or time.monotonic() > deadline:
            return a
        time.sleep(0.1)


def side_by_side(uuid: str, command: str, apps: list[str] | None = None) -> dict[str, str]:
    """``/bin/sh -c command`` on the host and inside every running app (``sandbox enter``):
    {"host": output, app: output, …} — the same question asked from each perspective."""
    import subprocess

    from sandbox.pod import stage0 as pod
    out = {"host": subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                                  timeout=30).stdout}
    for a in pod.status(uuid)["apps"]:
        if (apps is None and a["state"] == "running") or (apps and a["name"] in apps):
            r = pod.enter(uuid, a["name"], ["/bin/sh", "-c", command], capture=True)
            out[a["name"]] = r.stdout + r.stderr
    return out


def leftovers(uuid: str, host_veths: list[str] | None = None) -> dict[str, list[str]]:
    """What of the pod is still on the machine (all lists empty: nothing left behind): its
    directory, netns handle, mounts (host mount table), veth ends in the node netns (only
    ``host_veths`` when given: :func:`inspect` lists the pod's), cgroups,
    CNI cache entries and IP reservations (host-local's files naming the pod)."""
    from sandbox import config
    from sandbox.net import netns
    from sandbox.net.cni import Cache
    from sandbox.pod import stage0 as pod
    out: dict[str, list[str]] = {}
    state = config.sandbox_dir()
    out["pod directory"] = [str(p) for s in pod.STATES for p in [pod.pods_dir() / s / uuid]
                            if p.exists()]
    out["netns"] = [n for n in netns.list() if n == pod.netns_name(uuid)]
    out["mounts"] = [m["target"] for m in mounts("self") if uuid in m["target"] or uuid in m["root"]]
    veths = []
    node = pod.node_name()
    if netns.exists(node):
        snap = netns.snapshot(node)
        veths = [f"{node}: {l['name']}" for l in snap["links"] if l.get("kind") == "veth"
                 and (host_veths is None or l["name"] in host_veths)]
    out["veth in the node netns"] = veths
    groups = pod.pod_cgroups(uuid)
    out["cgroups"] = [str(d) for _h, d in groups.dirs()] if groups is not None else []
    out["CNI cache"] = [f"{a.network}/{a.ifname}" for a in Cache(state / "cni").attachments(container_id=uuid)]
    ips = []
    for f in (state / "cni").rglob("*") if (state / "cni").is_dir() else []:
        if f.is_file() and f.stat().st_size < 4096:
            try:
                if uuid in f.read_text(errors="replace"):
                    ips.append(str(f.relative_to(state)))
            except OSError:
                pass
    out["IP reservations"] = [i for i in ips if "results" not in i]
    return out


def stop_at_exit(uuid: str) -> None:
    """When this Python process exits (e.g. a notebook kernel stopped half-way), stop the pod if it
    still runs, remove it, and let gc take what it left (the node netns once no pod runs)."""
    import atexit
    import contextlib

    from sandbox.pod import stage0 as pod

    def clean() -> None:
        with contextlib.suppress(Exception):
            if pod.find(uuid)[0] == "run":
                pod.stop(uuid, timeout=5)
        with contextlib.suppress(Exception):
            pod.remove(uuid)
        with contextlib.suppress(Exception):
            pod.gc()
    atexit.register(clean)
