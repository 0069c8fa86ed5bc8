"""Lab 11: a pod by hand — call the primitives stage1 calls, in an order that works, and compare
the process you built with the one ``sandbox run`` builds (containers-from-scratch, with
ace.md's app perspective as the goal; pods.md, mount_namespaces(7), pivot_root(2)).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable

from sandbox.course.labs import LabError, Result, Workspace, gate
from sandbox.course.labs.authoring import code, footer, header, md, todo
from sandbox.errors import SandboxError

# The lab's declaration, read by sandbox.course.labs: the same names in every lab module (and
# CELLS opens with header(...) and a set-up cell in each), the values are this lab's: data.
NUMBER = 11
SLUG = "pod-by-hand"
TITLE = "A pod by hand: the primitives, in order"
FOLLOWS = "07"
OBJECTIVES = (
    'call each kernel primitive stage1 uses, in order: namespaces, mount propagation, '
    'overlay, pivot_root, /proc, hostname, cgroup, capabilities',
    "compare what you built with what `sandbox run` builds, from the app's perspective",
)
INTRO = """
Notebook 07 ran the seed's pod with `sandbox run`; stage1 did the work. Here *you* are stage1.
`byhand.start` gives you a helper process and one method per system call stage1 makes
(`help(byhand.ByHand)` lists them): `unshare` namespaces, `fork`, `make_private`,
`mount_overlay`, `pivot_root`, `mount_proc`, `sethostname`, `join_cgroup`,
`drop_capabilities`, `exec`. Your goal is the **app's perspective** of ace.md: a process in
namespaces of its own, whose `/` is a clean copy of the image, with its own `/proc` and
hostname, in a cgroup, with the capabilities an app keeps — and none of it visible on the host.

The order is the whole exercise. Some orders fail with an error that says why; some *succeed*
and leave a process that is not isolated the way you think (the check finds those). Two calls
are refused outright when they would change the machine itself. When you are stuck:
`sandbox lab reset 11`, then run the lab from the top."""

PROPERTIES = {
    "mnt": "its own mount namespace",
    "uts": "its own UTS namespace (hostname)",
    "ipc": "its own IPC namespace",
    "net": "its own network namespace",
    "pid": "its own PID namespace",
    "root": "/ is an overlay over the image's rendered tree",
    "private": "/ has private mount propagation",
    "proc": "/proc is a procfs of its own PID namespace",
    "hostname": "a hostname of its own",
    "cgroup": "a cgroup of the kit's",
    "caps": "the capabilities sandbox run leaves an app",
    "no_leak": "nothing it mounted is visible on the host",
}
CHECKS = [
    "your process is running",
    *(f"{desc}, as sandbox run builds it" for k, desc in PROPERTIES.items() if k != "no_leak"),
    "nothing it mounted is visible on the host",
]
STUDENT_HINT = "no process built by hand yet"
IMAGE = "example.com/busybox"
APP = ["/bin/busybox", "sleep", "100000"]

CELLS = [
    *header(NUMBER, TITLE, INTRO, OBJECTIVES, FOLLOWS),
    code('''
from sandbox.course import labs
from sandbox.course.labs import lab11
from sandbox.pod import byhand

ws = labs.workspace(11)
tree = lab11.setup(ws)             # example.com/busybox, rendered once into the tree store
bh = lab11.start(ws, tree)         # your helper process: no namespace of its own yet
bh
'''),
    md("""## 1. Build it

Call the primitives on `bh`, one per line, and end with `bh.exec(lab11.APP)` (the app sleeps,
so the process stays for the check). Before each call, ask: which namespace am I in, and what
does this call change — for me, and for the host? Useful: `bh.run(["/bin/busybox", "ls", "/"])`
runs a command in the helper's current state (before `pivot_root` that means the host's
programs: `bh.run(["ls", "/"])`)."""),
    todo('''
bh.unshare("mnt", "uts", "ipc", "net", "pid")
bh.fork()                          # the new PID namespace is for children: the child is PID 1
bh.make_private()                  # before mounting anything: no propagation to the host
bh.mount_overlay()
bh.join_cgroup()                   # while the host's /sys/fs/cgroup is still in sight
bh.pivot_root()
bh.mount_proc()                    # after the fork and the pivot: a procfs of the new PID namespace
bh.sethostname("by-hand")
bh.drop_capabilities()             # last: mounting and pivoting needed CAP_SYS_ADMIN
bh.exec(lab11.APP)
''', '''
'''),
    md("""## 2. Compare

The kit reads your process from `/proc` (namespaces, mount table, status, cgroup) and runs the
same image with `sandbox run` to read *its* app the same way:"""),
    code('from sandbox.viz import rows_table\n\nrows_table(lab11.compare(ws))'),
    *footer(NUMBER),
]


# ------------------------------------------------------------------------------- the lab's world


def setup(ws: Workspace) -> Path:
    """``example.com/busybox`` in the lab's store (from the catalogue, built offline) and its
    rendered tree; returns the tree's rootfs."""
    from sandbox.image import catalog
    from sandbox.image.store import Store
    from sandbox.render import treestore
    store = Store(ws.path / "state")
    if not store.find(IMAGE):
        built = catalog.build(ws.path / "catalog", allow_download=False, progress=False)
        store.import_aci(built[IMAGE])
    return treestore.render_image(store, IMAGE).rootfs


def start(ws: Workspace, tree: Path) -> Any:
    """A fresh helper (what a previous run of the cell left is stopped first)."""
    from sandbox.pod import byhand
    byhand.stop(ws.path / "container")
    return byhand.start(ws.path / "container", tree)


# ------------------------------------------------------------------------------- reading a process


def _host_hostname() -> str:
    import socket
    return socket.gethostname()


def facts(pid: int, tree: str | None = None) -> dict[str, Any]:
    """What /proc says about process ``pid`` — the same reading for your process and for the
    app ``sandbox run`` started."""
    from sandbox._sys import mountinfo
    out: dict[str, Any] = {}
    for k in ("mnt", "uts", "ipc", "net", "pid"):
        out[k] = os.stat(f"/proc/{pid}/ns/{k}").st_ino != os.stat(f"/proc/self/ns/{k}").st_ino
    mounts = mountinfo.mounts(pid)
    roots = [m for m in mounts if m.target == "/"]
    root = roots[-1] if roots else None
    out["root_fstype"] = root.fstype if root else "?"
    out["root"] = bool(root) and root.fstype == "overlay"
    if tree and root is not None:
        out["root"] = out["root"] and f"lowerdir={tree}" in root.super_options
    out["private"] = bool(root) and not any(o.startswith("shared:") for o in root.optional)
    procs = [m for m in mounts if m.target == "/proc" and m.fstype == "proc"]
    status = dict(l.split(":\t", 1) for l in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":\t" in l)
    nspid = status.get("NSpid", "").split()
    out["proc"] = bool(procs) and len(nspid) > 1
    out["proc_mounted"] = bool(procs)
    cp = subprocess.run(["nsenter", "-t", str(pid), "-u", "hostname"], capture_output=True,
                        text=True, timeout=10)
    out["hostname_value"] = cp.stdout.strip()
    out["hostname"] = cp.returncode == 0 and out["hostname_value"] != _host_hostname()
    cg = Path(f"/proc/{pid}/cgroup").read_text()
    out["cgroup"] = "/sandbox/" in cg
    out["caps_value"] = int(status.get("CapEff", "0").strip(), 16)
    out["nspid"] = nspid
    return out


def _reference(ws: Workspace) -> dict[str, Any]:
    """The same facts for the app of a pod ``sandbox run`` starts (once; cached in the
    workspace), with a memory isolator so it has a cgroup of the kit's too."""
    p = ws.path / "reference.json"
    if p.is_file():
        return json.loads(p.read_text())
    from sandbox.image.store import Store
    from sandbox.pod import perspective, stage0 as pod
    store = Store(ws.path / "state")
    pm = pod.pod_manifest_for(store, [IMAGE], exec_={0: APP})
    pm["apps"][0].setdefault("app", {})["isolators"] = [
        {"name": "resource/memory", "value": {"limit": "256M"}}]
    run = pod.prepare(store, pod_manifest=pm, net=["none"])
    try:
        pod.run_prepared(run.uuid, detach=True)
        # a detached run returns once the runners exist: read the app only once its runner has
        # become it (pivot_root done, capabilities dropped, exec'd), or the reference would be
        # the runner's half-built state (and cached as such)
        deadline = time.monotonic() + 30
        while True:
            app = perspective.inspect(run.uuid)["apps"][0]
            pid = (app["pids"] or [app["runner"]])[0]
            if _alive_app(pid):
                break
            if time.monotonic() > deadline:
                raise LabError("the reference pod that `sandbox run` builds did not start its app "
                               "within 30 s; run the check cell again (`sandbox doctor` if it "
                               "keeps failing).")
            time.sleep(0.05)
        ref = facts(pid, str(Path(pod.stage1_plan(run.uuid)["apps"][0]["tree"])))
    finally:
        try:
            pod.stop(run.uuid, timeout=5)
        except SandboxError:
            pass
        try:
            pod.remove(run.uuid)
        except SandboxError:
            pass
        pod.drop_idle_netns()
    p.write_text(json.dumps(ref))
    return ref


def _mine(ws: Workspace) -> tuple[int | None, dict[str, Any]]:
    try:
        rec = json.loads((ws.path / "container" / "byhand.json").read_text())
    except (OSError, ValueError):
        return None, {}
    return rec.get("pid"), rec


def _alive_app(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return cmd[:len(APP)] == [a.encode() for a in APP]


def compare(ws: Workspace) -> list[dict[str, Any]]:
    """One row per property: your process, the app sandbox run built, and whether they agree."""
    pid, rec = _mine(ws)
    if not _alive_app(pid):
        return [{"property": "your process", "by hand": "not running the app yet (exec it last)"}]
    mine = facts(pid, rec.get("tree"))
    ref = _reference(ws)
    rows = []
    for k, desc in PROPERTIES.items():
        if k == "no_leak":
            v = not _leaks(ws)
            rows.append({"property": desc, "by hand": v, "sandbox run": True, "same": v})
            continue
        a, b = mine.get(k), ref.get(k)
        if k == "caps":
            a, b = mine["caps_value"] == ref["caps_value"], True
        rows.append({"property": desc, "by hand": a, "sandbox run": b, "same": a == b})
    return rows


def _leaks(ws: Workspace) -> list[str]:
    from sandbox._sys import mountinfo
    return mountinfo.below(ws.path / "container")


# ------------------------------------------------------------------------------- the checks

HINTS = {
    "mnt": "your process shares the host's mount namespace: unshare mnt (before mounting anything)",
    "uts": "it shares the host's UTS namespace: unshare uts (and set the hostname inside it)",
    "ipc": "it shares the host's IPC namespace: unshare ipc",
    "net": "it shares the host's network namespace: unshare net",
    "pid": "it is in the host's PID namespace: unshare pid — and fork, since a new PID namespace "
           "is for the children of the process that unshares it",
    "root": "its / is not an overlay over the image's tree: mount the overlay, then pivot_root into it",
    "private": "its / has shared propagation: make / private (in its own mount namespace) before "
               "mounting — or what it mounts travels to the host",
    "proc": "",
    "hostname": "its hostname is the host's: sethostname, in its own UTS namespace",
    "cgroup": "it is in no cgroup of the kit's: join_cgroup (before pivot_root, while "
              "/sys/fs/cgroup is in sight)",
    "caps": "",
}


def checks(ws: Workspace) -> Iterable[Result]:
    pid, rec = _mine(ws)
    if not rec:
        yield gate(CHECKS[0], False, "no process built by hand yet: run the cells, ending with "
                   "bh.exec(lab11.APP)")
        return
    if not _alive_app(pid):
        done = ", ".join(rec.get("log") or []) or "nothing"
        yield gate(CHECKS[0], False, f"no process built by hand yet runs the app (done so far: {done}); "
                   "the last call is bh.exec(lab11.APP)")
        return
    yield gate(CHECKS[0], True)
    mine = facts(pid, rec.get("tree"))
    ref = _reference(ws)
    for k, desc in PROPERTIES.items():
        if k == "no_leak":
            continue
        name = f"{desc}, as sandbox run builds it"
        if k == "caps":
            ok = mine["caps_value"] == ref["caps_value"]
            extra = bin(mine["caps_value"] & ~ref["caps_value"]).count("1")
            hint = "" if ok else (f"it keeps {extra} capabilities an app does not (CapEff "
                                  f"{mine['caps_value']:x} vs {ref['caps_value']:x}): drop_capabilities, "
                                  "after the calls that need CAP_SYS_ADMIN")
        elif k == "proc":
            ok = mine["proc"] == ref["proc"]
            hint = "" if ok else ("there is no procfs at /proc in its mount table: mount_proc (after "
                                  "pivot_root, or into rootfs/proc before it)" if not mine["proc_mounted"]
                                  else "it has a /proc, but not of its own PID namespace: unshare pid, "
                                  "fork, and mount /proc in the child")
        else:
            ok = mine[k] == ref[k]
            hint = "" if ok else HINTS[k] + (f" (its / is {mine['root_fstype']})" if k == "root" else "")
        yield Result(name, ok, hint)
    leaks = _leaks(ws)
    yield Result(CHECKS[-1], not leaks,
                 f"the host's mount table has {', '.join(leaks)}: that mount was made before "
                 "unsharing mnt, or before making / private — it propagated to the host "
                 "(`sandbox lab reset 11` unmounts it)")


def reset(ws: Workspace) -> list[str]:
    from sandbox.course.labs.lab10 import _remove_trees
    from sandbox.pod import byhand
    return byhand.stop(ws.path / "container") + _remove_trees(ws)


def mistake(ws: Workspace) -> str:
    """What a learner who forgets ``unshare("uts")`` (and so the hostname) builds: the process
    is rebuilt that way. Returns what the check then says."""
    from sandbox.pod import byhand
    tree = setup(ws)
    byhand.stop(ws.path / "container")
    bh = byhand.start(ws.path / "container", tree)
    bh.unshare("mnt", "ipc", "net", "pid")
    bh.fork()
    bh.make_private()
    bh.mount_overlay()
    bh.join_cgroup()
    bh.pivot_root()
    bh.mount_proc()
    bh.drop_capabilities()
    bh.exec(APP)
    return "it shares the host's UTS namespace"
