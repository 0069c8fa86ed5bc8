"""Lab 6: the seed's three-app pod, from the app's perspective (ace.md §App perspective).

The lab's notebook (``CELLS``), its checks, the helpers its cells call and the mistake the tests
make live here together (see :mod:`sandbox.course.labs`).
"""
from __future__ import annotations

from typing import Iterable

from sandbox import config
from sandbox.course.labs import LabError, Result, Workspace, gate
from sandbox.errors import SandboxError
from sandbox.course.labs.authoring import code, footer, header, md, todo

NUMBER = 6
SLUG = "pod-app-perspective"
TITLE = "The seed's three-app pod, from the app's perspective"
FOLLOWS = "07"
INTRO = """
The spec excerpt: *the "app" perspective is how the app processes inside the pod see the
environment*. The example pod runs `example.com/reduce-worker`, `example.com/worker-backup` and
`example.com/reduce-worker-register` (built offline from Debian's busybox). Run it and look around
from inside: hostname, PID 1, network interfaces, filesystem."""

# One entry per check, in the order checks() yields them (a branch may word its check
# more precisely); the report lists those a failed gate kept from running as "not checked yet".
CHECKS = [
    'your pod is recorded',
    "the pod runs the seed's three apps",
    'your hostname matches what the app sees',
    'your pid1 matches what the app sees',
    'your interfaces matches what the app sees',
    'your backup_root matches what the app sees',
]
# What the untouched student notebook's check says first (tests/course/test_labs.py).
STUDENT_HINT = 'run the pod: p = pod.run(store, lab6.LAB6_APPS, detach=True)'

CELLS = [
    *header(NUMBER, TITLE, INTRO),
    code('''
from sandbox.course import labs
from sandbox.course.labs import lab6

from sandbox.pod import stage0 as pod
ws = labs.workspace(6)
store = lab6.catalogue_store()
lab6.LAB6_APPS
'''),
    md("## 1. Run the pod\n\n**TODO**: `pod.run(store, lab6.LAB6_APPS, detach=True)` returns once "
       "the apps started; record its UUID with `ws.answer(\"pod\", p.uuid)`."),
    todo('''
p = pod.run(store, lab6.LAB6_APPS, detach=True)
ws.answer("pod", p.uuid)
''', '''
p = None  # TODO: run the pod detached and record p.uuid
'''),
    code('print(lab6.pod_summary(ws))'),
    md("## 2. Look around from inside\n\n`lab6.app_view(uuid, app, shell_command)` runs a command "
       "inside an app (like `sandbox enter`). **TODO**: record what the apps see: the hostname "
       "(`hostname`), PID 1's command line (`tr '\\0' ' ' < /proc/1/cmdline`), the interfaces "
       "(`ls /sys/class/net`, as a list), and the names in worker-backup's `/` (`ls /`, as a list)."),
    todo('''
ws.answer("hostname", lab6.app_view(p.uuid, "reduce-worker", "hostname"))
ws.answer("pid1", lab6.app_view(p.uuid, "reduce-worker", "tr '\\\\0' ' ' < /proc/1/cmdline"))
ws.answer("interfaces", lab6.app_view(p.uuid, "reduce-worker", "ls /sys/class/net").split())
ws.answer("backup_root", lab6.app_view(p.uuid, "worker-backup", "ls /").split())
ws.answers()
''', '''
# TODO: ws.answer("hostname", ...), ws.answer("pid1", ...), ws.answer("interfaces", [...]),
#       ws.answer("backup_root", [...])
'''),
    md("What did you find? All apps share one hostname, one PID namespace (PID 1 is the kit's "
       "stage1, not your app) and one network namespace (`lo` + `eth0`), but each has its *own* "
       "filesystem: worker-backup's whitelist left it only the few paths it needs."),
    *footer(NUMBER),
]


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


def checks(ws: Workspace) -> Iterable[Result]:
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


def reset(ws: Workspace) -> list[str]:
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


def mistake(ws: Workspace) -> str:
    """A state learners get into: the pod stopped before the answers are checked.
    Returns what the check then says."""
    from sandbox.pod import stage0 as pod
    pod.stop(ws.answers()["pod"], timeout=5)
    return "its apps cannot be inspected any more; run `sandbox lab reset 6`"
