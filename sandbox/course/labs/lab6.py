"""Lab 6: the seed's three-app pod, from the app's perspective (ace.md §App perspective).

The lab's notebook (``CELLS``), its checks, the helpers its cells call and the mistake the tests
make live here together (see :mod:`sandbox.course.labs`).
"""
from __future__ import annotations

from typing import Any, Iterable

from sandbox import config
from sandbox.course.labs import LabError, Result, Workspace, gate
from sandbox.errors import SandboxError
from sandbox.course.labs.authoring import code, footer, header, md, todo

# The lab's declaration, read by sandbox.course.labs: the same names in every lab module (and
# CELLS opens with header(...) and a set-up cell in each), the values are this lab's: data.
NUMBER = 6
SLUG = "pod-app-perspective"
TITLE = "The seed's three-app pod: predict what the apps see, then look"
FOLLOWS = "07"
OBJECTIVES = (
    "run the seed's three-app pod",
    'record what the apps see: hostname, PID 1, interfaces, their own filesystem',
)
INTRO = """
The spec excerpt: *the "app" perspective is how the app processes inside the pod see the
environment*. The example pod runs `example.com/reduce-worker`, `example.com/worker-backup` and
`example.com/reduce-worker-register` (built offline from Debian's busybox). A pod shares some
namespaces between its apps (pods.md: PID, network, IPC, UTS) and not others (each app has its
own mount namespace, rooted in its own rendered filesystem), and volumes cross that line on
purpose. **Predict** what the apps will see — before the pod runs — then run it and look."""

QUESTIONS = {
    "same_hostname": "Do reduce-worker and worker-backup see the same hostname?",
    "pid1_is_an_app": "Is PID 1, as an app sees it, one of the three apps?",
    "see_each_others_processes": "Does `ps` in worker-backup show reduce-worker's processes?",
    "tmp_shared": "A file reduce-worker writes to /tmp: does it appear in worker-backup's /tmp?",
    "volume_shared": "A file reduce-worker writes to /var/lib/reduce (the `results` volume): "
                     "does it appear in worker-backup?",
    "backup_has_wget": "Can worker-backup run busybox's `wget`?",
    "interfaces": "How many network interfaces does an app see (a number)?",
}

# One entry per check, in the order checks() yields them (a branch may word its check
# more precisely); the report lists those a failed gate kept from running as "not checked yet".
CHECKS = [
    "your predictions are recorded",
    "your pod is recorded",
    "the pod runs the seed's three apps",
    *(f"prediction {k} matches what the apps show" for k in QUESTIONS),
]
# What the untouched student notebook's check says first (tests/course/test_labs.py).
STUDENT_HINT = "record your predictions"

CELLS = [
    *header(NUMBER, TITLE, INTRO, OBJECTIVES, FOLLOWS),
    code('''
from sandbox.course import labs
from sandbox.course.labs import lab6

from sandbox.pod import stage0 as pod
ws = labs.workspace(6)
store = lab6.catalogue_store()
lab6.QUESTIONS
'''),
    md("## 1. Predict\n\nAnswer the seven questions above from what notebook 07 taught (which "
       "namespaces a pod shares, what a rootfs and a volume are, what the pathWhitelist keeps) "
       "— **before** the pod runs. Record a dictionary: `True`/`False` for the yes/no questions, "
       "a number for the last."),
    todo('''
ws.answer("predictions", {"same_hostname": True, "pid1_is_an_app": False,
                          "see_each_others_processes": True, "tmp_shared": False,
                          "volume_shared": True, "backup_has_wget": False, "interfaces": 2})
''', '''
ws.answer("predictions", {})
'''),
    md("## 2. Run the pod\n\nStart the three apps as one pod, detached (the call is in notebook "
       "07), and record its UUID with `ws.answer(\"pod\", …)`."),
    todo('''
p = pod.run(store, lab6.LAB6_APPS, detach=True)
ws.answer("pod", p.uuid)
''', '''
'''),
    code('print(lab6.pod_summary(ws))'),
    md("## 3. Look\n\nThe kit asks each question of the running apps (with `sandbox enter`: "
       "`lab6.app_view(uuid, app, shell_command)` runs one command inside one app — try your own) "
       "and puts the evidence next to your prediction:"),
    code('from sandbox.viz import rows_table\n\nrows_table(lab6.observe(ws))'),
    md("Where you were wrong, the evidence says why; the check below says it too. Change a "
       "prediction if you must — the check notes that you did."),
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
                      allow_download=False, progress=progress)
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


def _truth(uuid: str) -> dict[str, tuple[Any, str]]:
    """Each question asked of the running apps: {key: (answer, evidence)}. Files written to
    find out are removed again."""
    import secrets
    token = f"lab6-{secrets.token_hex(4)}"
    rw, wb = "reduce-worker", "worker-backup"
    out: dict[str, tuple[Any, str]] = {}
    # worker-backup's whitelist keeps few applets; the busybox binary itself runs any of them
    h1, h2 = app_view(uuid, rw, "hostname"), app_view(uuid, wb, "busybox hostname")
    out["same_hostname"] = (h1 == h2, f"reduce-worker: {h1}, worker-backup: {h2}")
    pid1 = app_view(uuid, rw, "tr '\\0' ' ' < /proc/1/cmdline")
    out["pid1_is_an_app"] = ("/opt/" in pid1, f"PID 1 is `{pid1[:70]}`")
    ps = app_view(uuid, wb, "busybox ps -o pid,args")
    out["see_each_others_processes"] = ("/opt/reduce-worker/run" in ps,
                                        "ps in worker-backup: " + "; ".join(
                                            l.strip() for l in ps.splitlines()[1:] if "ps -o" not in l)[:200])
    app_view(uuid, rw, f"echo x > /tmp/{token}")
    try:
        seen = app_view(uuid, wb, f"ls /tmp/{token} 2>/dev/null || true")
    finally:
        app_view(uuid, rw, f"rm -f /tmp/{token}")
    out["tmp_shared"] = (bool(seen), f"worker-backup's /tmp {'has' if seen else 'has no'} {token}")
    app_view(uuid, rw, f"echo x > /var/lib/reduce/{token}")
    try:
        seen = app_view(uuid, wb, f"ls /var/lib/reduce/{token} 2>/dev/null || true")
    finally:
        app_view(uuid, rw, f"rm -f /var/lib/reduce/{token}")
    out["volume_shared"] = (bool(seen), f"worker-backup's /var/lib/reduce {'has' if seen else 'has no'} "
                                        f"{token} (both mount the `results` volume there)")
    w = app_view(uuid, wb, "ls /bin/wget /usr/bin/wget 2>/dev/null || true")
    out["backup_has_wget"] = (bool(w), f"worker-backup's /bin and /usr/bin {'have' if w else 'have no'} "
                                       "wget (its pathWhitelist keeps 8 applets)")
    ifs = app_view(uuid, rw, "ls /sys/class/net").split()
    out["interfaces"] = (len(ifs), f"/sys/class/net: {' '.join(ifs)}")
    return out


def _running(ws: Workspace) -> tuple[str | None, str]:
    """(the pod's UUID if it runs the three apps, else None; why not)."""
    from sandbox.pod import stage0 as pod
    uuid = ws.answers().get("pod")
    if not uuid:
        return None, "no pod recorded"
    try:
        st = pod.status(uuid)
    except SandboxError:
        return None, f"pod {uuid[:8]} no longer exists"
    if st["state"] != "run":
        return None, f"pod {uuid[:8]} is {st['state']}"
    return uuid, ""


def observe(ws: Workspace) -> list[dict[str, Any]]:
    """Your predictions next to what the running apps show, one row per question."""
    uuid, why = _running(ws)
    if uuid is None:
        return [{"question": f"{why}: run the pod first (section 2)"}]
    pred = ws.answers().get("predictions") or {}
    return [{"question": QUESTIONS[k], "you predicted": pred.get(k, "-"), "the apps show": ans,
             "evidence": ev} for k, (ans, ev) in _truth(uuid).items()]


def checks(ws: Workspace) -> Iterable[Result]:
    from sandbox.pod import stage0 as pod
    a = ws.answers()
    pred = a.get("predictions") or {}
    missing = [k for k in QUESTIONS if k not in pred]
    yield gate(CHECKS[0], not missing,
               "record your predictions first: ws.answer('predictions', {question: answer}) for "
               + ", ".join(missing))
    if missing:
        return
    uuid = a.get("pod")
    yield gate(CHECKS[1], bool(uuid),
               "start the pod detached (notebook 07 shows the call) and record its UUID: "
               "ws.answer('pod', p.uuid)")
    if not uuid:
        return
    live, why = _running(ws)
    if live is None:
        yield Result("the pod is running", False,
                     f"{why}: its apps cannot be inspected any more; run `sandbox lab reset 6` "
                     "and run the lab again", "failcheck")
        return
    st = pod.status(uuid)
    apps = {x["name"] for x in st["apps"]}
    want = {"reduce-worker", "worker-backup", "reduce-worker-register"}
    yield gate(CHECKS[2], apps == want, f"the pod's apps are {sorted(apps)}; run it with lab6.LAB6_APPS")
    if apps != want:
        return
    t = ws._read("answers.json").get("predictions", {}).get("time")
    started = st.get("started") or st.get("created")
    if isinstance(t, (int, float)) and isinstance(started, (int, float)) and t > started:
        yield Result("predicted before the pod ran", True,
                     "you changed your predictions after the pod started; next time, commit first",
                     "advice")
    for k, (real, evidence) in _truth(uuid).items():
        mine = pred.get(k)
        ok = (mine == real) if k == "interfaces" else (bool(mine) is real and isinstance(mine, bool))
        yield Result(f"prediction {k} matches what the apps show", ok,
                     "" if ok else f"you predicted {mine!r}, the apps show {real!r}: {evidence}")


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
    """A mistake learners make on the finished lab: expect /tmp to be shared like the network.
    Returns what the check then says."""
    p = dict(ws.answers()["predictions"])
    p["tmp_shared"] = True
    ws.answer("predictions", p)
    return "worker-backup's /tmp has no lab6-"
