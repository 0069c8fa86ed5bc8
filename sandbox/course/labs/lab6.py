"""Lab 6: the seed's three-app pod, from the app's perspective (ace.md §App perspective).
"""
from __future__ import annotations

from typing import Iterable

from sandbox import config
from sandbox.course.labs import LabError, Result, Workspace, checks_for, gate, reset_for
from sandbox.errors import SandboxError

LAB6_APPS = ["example.com/reduce-worker", "example.com/worker-backup",
             "example.com/reduce-worker-register"]


def catalogue_store(progress: bool = False):
    """The store with the lab catalogue imported (built offline from Debian's busybox once)."""
    from sandbox.image import catalog
    from sandbox.image.store import Store
    store = Store()
    have = {i.name for i in store.list()}
    if not set(LAB6_APPS) <= have:
        catalog.build(config.sandbox_dir() / "cache" / "catalog", import_to=store,
                      progress=progress)
    return store


def app_view(uuid: str, app: str, cmd: str) -> str:
    """What ``cmd`` prints inside ``app`` of a running pod (for the lab's cells and checks)."""
    from sandbox.pod import stage0 as pod
    cp = pod.enter(uuid, app, ["/bin/sh", "-c", cmd], capture=True, timeout=30)
    if cp.returncode != 0:
        raise LabError(f"`{cmd}` failed inside {app} ({cp.returncode}): {cp.stderr.strip()}")
    return cp.stdout.strip()


def pod_summary(ws: Workspace) -> str:
    from sandbox.pod import stage0 as pod
    uuid = ws.answers().get("pod")
    if not uuid:
        return "no pod recorded yet"
    try:
        st = pod.status(uuid)
    except SandboxError as e:
        return str(e)
    apps = ", ".join(f"{a['name']}={a['state']}" for a in st["apps"])
    return f"pod {uuid[:8]}: {st['state']} ({apps}); networks: {st.get('networks')}"


@checks_for(6)
def _checks_6(ws: Workspace) -> Iterable[Result]:
    from sandbox.pod import stage0 as pod
    a = ws.answers()
    uuid = a.get("pod")
    yield gate("your pod is recorded", bool(uuid),
                "run the pod: p = pod.run(store, lab6.LAB6_APPS, detach=True), then "
                "ws.answer('pod', p.uuid)")
    if not uuid:
        return
    try:
        st = pod.status(uuid)
    except SandboxError:
        yield Result("the pod is running", False,
                     f"pod {uuid[:8]} no longer exists (collected by `sandbox gc`?): run "
                     "`sandbox lab reset 6` and run the lab again", "failcheck")
        return
    if st["state"] != "run":
        yield Result("the pod is running", False,
                     f"pod {uuid[:8]} is {st['state']}: its apps cannot be inspected any more; "
                     "run `sandbox lab reset 6` and run the lab again", "failcheck")
        return
    apps = {x["name"]: x for x in st["apps"]}
    want = {"reduce-worker", "worker-backup", "reduce-worker-register"}
    yield gate("the pod runs the seed's three apps", set(apps) == want,
                f"the pod's apps are {sorted(apps)}; run it with lab6.LAB6_APPS")
    if set(apps) != want:
        return
    live = {
        "hostname": lambda: app_view(uuid, "reduce-worker", "hostname"),
        "pid1": lambda: app_view(uuid, "reduce-worker", "tr '\\0' ' ' < /proc/1/cmdline").strip(),
        "interfaces": lambda: sorted(app_view(uuid, "reduce-worker", "ls /sys/class/net").split()),
        "backup_root": lambda: sorted(app_view(uuid, "worker-backup", "ls /").split()),
    }
    asks = {
        "hostname": "the hostname the apps see: ws.answer('hostname', …)",
        "pid1": "the command line of PID 1 as an app sees it (/proc/1/cmdline, NULs as spaces)",
        "interfaces": "the interface names an app sees (/sys/class/net), as a list",
        "backup_root": "the names in worker-backup's / (ls /), as a list",
    }
    for key, get_live in live.items():
        mine = a.get(key)
        if mine is None:
            yield Result(f"you recorded {key}", False, f"record {asks[key]}")
            continue
        real = get_live()
        if isinstance(real, list):
            mine = sorted(mine) if isinstance(mine, (list, tuple, set)) else mine
        hint = "" if mine == real else f"you recorded {mine!r}; inside the pod it is {real!r}"
        if key == "backup_root" and mine != real and isinstance(mine, list) and "home" in mine:
            hint += " (worker-backup has a pathWhitelist: only what it lists survives rendering)"
        yield Result(f"your {key} matches what the app sees", not hint, hint)


@reset_for(6)
def _reset_6(ws: Workspace) -> list[str]:
    from sandbox.pod import stage0 as pod
    done = []
    mine = {u for u in ws.history("pod") if u}      # a re-run cell may have started several
    for p in pod.list_pods():
        lab_pod = sorted(a.get("image", "") for a in p.get("apps", [])) == sorted(LAB6_APPS)
        if p.get("state") == "run" and (p["uuid"] in mine or lab_pod):
            pod.stop(p["uuid"], timeout=5)
            done.append(f"stopped pod {p['uuid'][:8]}")
    done += pod.gc(grace=0)
    return done
