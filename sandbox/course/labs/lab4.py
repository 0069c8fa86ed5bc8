"""Lab 4: a network namespace the slide's way, two wired with a veth pair (slide 48).

The lab's notebook (``CELLS``), its checks, the helpers its cells call and the mistake the tests
make live here together (see :mod:`sandbox.course.labs`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from sandbox.course.labs import Result, Workspace, gate
from sandbox.course.labs.authoring import code, footer, header, md, todo

# The lab's declaration, read by sandbox.course.labs: the same names in every lab module (and
# CELLS opens with header(...) and a set-up cell in each), the values are this lab's: data.
NUMBER = 4
SLUG = "veth"
TITLE = "A network namespace the slide's way, and two wired with a veth pair"
FOLLOWS = "05"
OBJECTIVES = (
    'make a network namespace with `touch` and `unshare -n mount --bind`',
    'join two namespaces with a veth pair, address both ends and ping across',
)
INTRO = """
Slide 48, CNI step 1: the runtime creates a network namespace and gives it a *named handle*:

    touch myns
    unshare -n mount --bind /proc/self/ns/net myns

You will make one exactly so, another with the kit, join them with a veth pair, give each end an
address and ping across — only between the two namespaces this lab made. The names are unique
(`sbx-l4-…`) so nothing else on the machine is touched."""

# One entry per check, in the order checks() yields them (a branch may word its check
# more precisely); the report lists those a failed gate kept from running as "not checked yet".
CHECKS = [
    'netns A exists',
    'netns B exists',
    'a veth pair joins the two namespaces',
    'both veth ends are UP',
    'each end has its address',
    "A reaches B's address over the veth",
    "you recorded your ping's exit status",
]
# What the untouched student notebook's check says first (tests/course/test_labs.py).
STUDENT_HINT = 'touch` it, then bind a new netns on it'

CELLS = [
    *header(NUMBER, TITLE, INTRO, OBJECTIVES, FOLLOWS),
    code('''
import subprocess
from pathlib import Path

from sandbox.course import labs
from sandbox.course.labs import lab4

from sandbox.net import netns
ws = labs.workspace(4)
n = lab4.lab4_names(ws)
A, B, VA, VB, ADDR_A, ADDR_B = (n[k] for k in ("A", "B", "VA", "VB", "ADDR_A", "ADDR_B"))
lab4.netns_dir()                 # /run/netns, where `ip netns` looks
n
'''),
    md("## 1. Namespace A, the slide's way\n\n**TODO**: `touch` the handle `/run/netns/<A>`, then "
       "run `unshare -n mount --bind /proc/self/ns/net <handle>` (with `subprocess.run`)."),
    todo('''
handle = Path("/run/netns") / A
handle.touch()
subprocess.run(["unshare", "-n", "mount", "--bind", "/proc/self/ns/net", str(handle)], check=True)
''', '''
handle = Path("/run/netns") / A
# TODO: touch the handle, then: unshare -n mount --bind /proc/self/ns/net <handle>
'''),
    md("## 2. Namespace B, with the kit\n\n**TODO**: `netns.create(B)` does the same (a helper "
       "thread unshares and bind-mounts its own namespace)."),
    todo('netns.create(B)', '# TODO: netns.create(B)'),
    code('print(lab4.show_netns(A, B))'),
    md("### Film what you do next\n\nFrom here on, every change the kernel announces in A and B "
       "(a link made, moved, set up, an address, a route) is recorded, whatever makes it — your `ip` "
       "commands included. Section 4 replays it step by step."),
    code('film = lab4.film(A, B)          # watches A and B until the replay below'),
    md("## 3. A veth pair between them\n\n**TODO**: create the pair *inside* A with its peer born "
       "in B — `ip -n A link add VA type veth peer name VB netns B` — and give each end its "
       "address (`ip -n A addr add ADDR_A dev VA`, same for B). Always `-n`: never the host."),
    todo('''
subprocess.run(["ip", "-n", A, "link", "add", VA, "type", "veth", "peer", "name", VB, "netns", B], check=True)
subprocess.run(["ip", "-n", A, "addr", "add", ADDR_A, "dev", VA], check=True)
subprocess.run(["ip", "-n", B, "addr", "add", ADDR_B, "dev", VB], check=True)
''', '''
# TODO: the veth pair (VA in A, VB in B) and the two addresses
'''),
    code('print(lab4.show_netns(A, B))'),
    md("## 4. Up, and ping\n\n**TODO**: a new link is DOWN: set both ends up. Then ping B's "
       "address from A with `netns.ping(A, address)` and record `ws.answer(\"ping_rc\", r.returncode)`."),
    todo('''
subprocess.run(["ip", "-n", A, "link", "set", VA, "up"], check=True)
subprocess.run(["ip", "-n", B, "link", "set", VB, "up"], check=True)
''', '''
# TODO: set VA up inside A and VB up inside B
'''),
    code('from sandbox.viz.net import netns_picture\n\nnetns_picture(A, B)'),
    md("### Your veth pair, step by step\n\nThe film of A and B since the cell above started it: "
       "one step per change the kernel made, in its order — the picture is the kernel's state "
       "right after it."),
    code('from sandbox.viz.stepper import stepper\n\n'
         'stepper(lab4.replay(film), title="your veth pair, as the kernel saw it")'),
    todo('''
r = netns.ping(A, ADDR_B.split("/")[0])
print(r.stdout)
ws.answer("ping_rc", r.returncode)
''', '''
# TODO: r = netns.ping(A, <B's address without /24>); ws.answer("ping_rc", r.returncode)
'''),
    *footer(NUMBER),
]


def lab4_names(ws: Workspace) -> dict[str, str]:
    """Names and addresses for lab 4: two netns, the veth ends, two addresses in one /24."""
    a, b = ws.name("a"), ws.name("b")
    tag = a.split("-")[2]
    third = int(tag[:2], 16)
    return {"A": a, "B": b, "VA": f"sbx{tag}a", "VB": f"sbx{tag}b",
            "ADDR_A": f"10.244.{third}.1/24", "ADDR_B": f"10.244.{third}.2/24"}


def netns_dir() -> Path:
    """/run/netns, made like ``ip netns add`` makes it (so handles there show in ``ip netns``)."""
    from sandbox.net import netns
    d = Path(netns.DEFAULT_DIR)
    if not d.is_dir():
        probe = netns.unique_name()
        netns.create(probe)
        netns.delete(probe)
    return d


def show_netns(*names: str) -> str:
    """A short text view of the links inside each named netns (tolerant of missing ones)."""
    from sandbox.net import netns
    lines = []
    for n in names:
        if not netns.is_netns(netns.path_of(n)):
            lines.append(f"{n}: no network namespace")
            continue
        lines.append(f"{n}:")
        for l in netns.snapshot(n)["links"]:
            lines.append(f"  {l['name']:<16} {l['kind'] or '':<8} {'UP' if l['up'] else 'DOWN':<5}"
                         f" {' '.join(l['addrs'])}")
    return "\n".join(lines)


_films: list = []     # started by film(), stopped by replay() or reset()


def film(*names: str):
    """Watch these network namespaces from now on (:class:`sandbox.net.watch.KernelFilm`);
    None while one of them does not exist yet (replay then says there is nothing)."""
    from sandbox.net import netns, watch
    if not all(netns.is_netns(netns.path_of(n)) for n in names):
        return None
    f = watch.KernelFilm({n: netns.path_of(n) for n in names}).start()
    _films.append(f)
    return f


def replay(f: Any):
    """Stop a film and return its changes as steps for the stepper (empty without a film)."""
    from sandbox.steps import Steps
    steps = Steps(snapshots=True)
    if f is None:
        return steps
    f.take()
    _stop(f)
    return f.record_into(steps)


def _stop(f: Any) -> None:
    if f in _films:
        _films.remove(f)
        f.stop()


def checks(ws: Workspace) -> Iterable[Result]:
    from sandbox.net import netns
    n = lab4_names(ws)
    host_links = set(os.listdir("/sys/class/net"))
    stray = sorted(host_links & {n["VA"], n["VB"]})
    if stray:
        yield Result("the host's network is untouched", False,
                     f"{', '.join(stray)} exists on the host (a command ran without `-n`), so the "
                     f"lab changed the real host: run `sandbox lab reset 4` and start again",
                     "failcheck")
    snaps = {}
    for key in ("A", "B"):
        p = netns.path_of(n[key])
        if not p.exists():
            yield gate(f"netns {n[key]} exists", False,
                        f"no handle {p} yet: `touch` it, then bind a new netns on it: "
                        f"unshare -n mount --bind /proc/self/ns/net {p}")
            return
        if not netns.is_netns(p):
            yield gate(f"netns {n[key]} exists", False,
                        f"{p} is an empty file, not a namespace: bind one on it with "
                        f"`unshare -n mount --bind /proc/self/ns/net {p}`")
            return
        snaps[key] = netns.snapshot(n[key])
        yield Result(f"netns {n[key]} exists", True)
    links = {k: {l["name"]: l for l in s["links"]} for k, s in snaps.items()}
    va, vb = links["A"].get(n["VA"]), links["B"].get(n["VB"])
    if va is None or vb is None:
        where = [f"{name} in {n[k]}" for k, name in (("A", n["VA"]), ("B", n["VB"]))
                 if links[k].get(name) is None]
        extra = ""
        if n["VB"] in links["A"]:
            extra = f" ({n['VB']} is in {n['A']}: move it with `ip -n {n['A']} link set {n['VB']} netns {n['B']}`)"
        yield gate("a veth pair joins the two namespaces", False,
                    f"missing: {', '.join(where)}{extra}: `ip -n {n['A']} link add {n['VA']} type "
                    f"veth peer name {n['VB']} netns {n['B']}`")
        return
    if va["kind"] != "veth" or vb["kind"] != "veth" or va["peer_index"] != vb["index"] \
            or vb["peer_index"] != va["index"]:
        yield gate("a veth pair joins the two namespaces", False,
                    f"{n['VA']} and {n['VB']} are not the two ends of one veth pair")
        return
    yield Result("a veth pair joins the two namespaces", True)
    down = [(k, name) for k, name, l in (("A", n["VA"], va), ("B", n["VB"], vb)) if not l["up"]]
    yield gate("both veth ends are UP", not down, "; ".join(
        f"the veth {name} exists but is DOWN inside the netns {n[k]}: "
        f"`ip -n {n[k]} link set {name} up`" for k, name in down))
    if down:
        return
    want = {"A": n["ADDR_A"], "B": n["ADDR_B"]}
    bad = [(k, name, l) for k, name, l in (("A", n["VA"], va), ("B", n["VB"], vb))
           if want[k] not in l["addrs"]]
    yield gate("each end has its address", not bad, "; ".join(
        f"{name} in {n[k]} has {', '.join(l['addrs']) or 'no address'}, the lab wants "
        f"{want[k]}: `ip -n {n[k]} addr add {want[k]} dev {name}`" for k, name, l in bad))
    if bad:
        return
    target = n["ADDR_B"].split("/")[0]
    cp = netns.ping(n["A"], target, count=1, timeout=2)   # inside the lab's own namespaces
    yield Result(f"{n['A']} reaches {target} over the veth", cp.returncode == 0,
                 f"ping failed: {(cp.stdout + cp.stderr).strip().splitlines()[-1:]}")
    rc = ws.answers().get("ping_rc")
    yield Result("you recorded your ping's exit status", rc == 0,
                 "run netns.ping(A, ADDR_B) and record ws.answer('ping_rc', r.returncode)"
                 if rc is None else f"you recorded {rc}; a ping that got its reply exits 0")


def reset(ws: Workspace) -> list[str]:
    from sandbox.net import netns
    done = []
    for f in list(_films):            # a film still running watches nothing once A and B go
        _stop(f)
        done.append("stopped the film of " + " and ".join(f.labels))
    if not ws.names():
        return done
    n = lab4_names(ws)
    for key in ("A", "B"):
        p = netns.path_of(n[key])
        if p.exists() or netns.is_netns(p):
            netns.delete(n[key], missing_ok=True)
            done.append(f"deleted netns {n[key]}")
    for link in (n["VA"], n["VB"]):
        if os.path.exists(f"/sys/class/net/{link}"):
            _delete_host_link(link)
            done.append(f"deleted host link {link}")
    return done


def _delete_host_link(name: str) -> None:
    from sandbox.net import netns

    def work() -> None:
        with netns.iproute(None) as ipr:
            idx = ipr.link_lookup(ifname=name)
            if idx:
                ipr.link("del", index=idx[0])
    netns.in_thread(work)


def mistake(ws: Workspace) -> str:
    """A mistake learners make on the finished lab: one veth end left DOWN.
    Returns what the check then says."""
    import subprocess
    n = lab4_names(ws)
    subprocess.run(["ip", "-n", n["B"], "link", "set", n["VB"], "down"], check=True)
    return f"the veth {n['VB']} exists but is DOWN inside the netns {n['B']}"
