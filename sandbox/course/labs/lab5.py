"""Lab 5: your own CNI IPAM plugin backed by SQLite (slides 44–47; CNI SPEC.md).

The lab's notebook (``CELLS``), its checks, the helpers its cells call and the mistake the tests
make live here together (see :mod:`sandbox.course.labs`).
"""
from __future__ import annotations

import ipaddress
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

from sandbox.course.labs import Result, Workspace, gate
from sandbox.errors import SandboxError
from sandbox.course.labs.authoring import code, footer, header, md, todo
from sandbox.net.cni.invoke import DEBIAN_CNI_DIR

# The lab's declaration, read by sandbox.course.labs: the same names in every lab module (and
# CELLS opens with header(...) and a set-up cell in each), the values are this lab's: data.
NUMBER = 5
SLUG = "sqlite-ipam"
TITLE = "Your own CNI IPAM plugin, backed by SQLite"
FOLLOWS = "06"
OBJECTIVES = (
    'write a CNI IPAM plugin (ADD, DEL, VERSION) backed by SQLite',
    "run it under the kit's runtime and bridge, and under upstream's bridge",
)
INTRO = """
Slide 44 lists ways to allocate IP addresses — one is an *IPAM system backed by SQL database*.
In CNI that is just another plugin: the main plugin (`bridge`) execs the program named by
`ipam.type` with the same environment and stdin, and it answers with addresses. You will write
`sqlite-ipam`, then run it under the kit's runtime (`sandbox.net.cni.Runtime`) with the kit's bridge,
and under Debian's upstream bridge (`/usr/lib/cni/bridge`) delegating to it. Everything runs in a
*node* network namespace that plays the host — never on the real host."""

# One entry per check, in the order checks() yields them (a branch may word its check
# more precisely); the report lists those a failed gate kept from running as "not checked yet".
CHECKS = [
    'your plugin is installed',
    'VERSION answers with the versions it supports (incl. 1.0.0)',
    'your plugin allocates unique addresses, releases them on DEL (twice)',
    "c1 is attached through the kit's bridge with an address from your database",
    "c2 is attached through upstream's bridge (/usr/lib/cni/bridge) with an address from your database",
]
# What the untouched student notebook's check says first (tests/course/test_labs.py).
STUDENT_HINT = 'ADD is not written yet (TODO)'

PLUGIN_HEAD = r'''
PLUGIN = r"""
import ipaddress, json, os, sqlite3, sys

SUPPORTED = ["1.0.0"]


def reply(obj, code=0):
    print(json.dumps(obj))
    sys.exit(code)


def error(code, msg, version):
    reply({"cniVersion": version, "code": code, "msg": msg}, 1)


cmd = os.environ.get("CNI_COMMAND", "")
conf = json.load(sys.stdin)
version = conf.get("cniVersion", "1.0.0")
if cmd == "VERSION":
    reply({"cniVersion": version, "supportedVersions": SUPPORTED})

ipam = conf["ipam"]
subnet = ipaddress.ip_network(ipam["subnet"])
gateway = subnet[1]                      # the bridge's address: never give it to a container
db = sqlite3.connect(ipam["dbPath"], timeout=30, isolation_level=None)
db.execute("CREATE TABLE IF NOT EXISTS leases (network TEXT, ip TEXT, container TEXT, ifname TEXT,"
           " PRIMARY KEY (network, ip))")
who = (conf["name"], os.environ["CNI_CONTAINERID"], os.environ["CNI_IFNAME"])
'''

CELLS = [
    *header(NUMBER, TITLE, INTRO, OBJECTIVES, FOLLOWS),
    code('''
from sandbox.course import labs
from sandbox.course.labs import lab5

from sandbox.net import netns
ws = labs.workspace(5)
n = lab5.lab5_setup(ws)          # node netns, two container netns, two network configs
print((ws.path / "net.d-ours" / "10-lab5.conf").read_text())
n
'''),
    md("## 1. The plugin\n\nThe protocol (CNI SPEC §2): `CNI_COMMAND` (ADD, DEL, VERSION…), "
       "`CNI_CONTAINERID`, `CNI_IFNAME` in the environment, the network config as JSON on stdin, "
       "one JSON answer on stdout, exit 0 (or an error object and exit 1).\n\n**TODO**: write ADD "
       "(first free host address of the subnet, not the gateway; INSERT it; reply with "
       "`{\"cniVersion\": version, \"ips\": [{\"address\": \"<ip>/<prefix>\", \"gateway\": …}]}`) "
       "and DEL (delete the row; succeed when there is none)."),
    todo(PLUGIN_HEAD + r'''
if cmd == "ADD":
    db.execute("BEGIN IMMEDIATE")            # one writer at a time: no address is given twice
    row = db.execute("SELECT ip FROM leases WHERE network=? AND container=? AND ifname=?", who).fetchone()
    if row:
        ip = row[0]
    else:
        used = {r[0] for r in db.execute("SELECT ip FROM leases WHERE network=?", who[:1])}
        ip = next((str(h) for h in subnet.hosts() if h != gateway and str(h) not in used), None)
        if ip is None:
            db.execute("ROLLBACK")
            error(110, f"no free address left in {subnet}", version)
        db.execute("INSERT INTO leases VALUES (?, ?, ?, ?)", (who[0], ip, who[1], who[2]))
    db.execute("COMMIT")
    reply({"cniVersion": version,
           "ips": [{"address": f"{ip}/{subnet.prefixlen}", "gateway": str(gateway)}]})
elif cmd == "DEL":
    db.execute("DELETE FROM leases WHERE network=? AND container=? AND ifname=?", who)
elif cmd in ("CHECK", "GC", "STATUS"):
    pass
else:
    error(4, f"unknown CNI_COMMAND {cmd!r}", version)
"""
''', PLUGIN_HEAD + r'''
if cmd == "ADD":
    # TODO: pick the first free host address (skip the gateway), INSERT it, reply with the result
    error(100, "ADD is not written yet (TODO)", version)
elif cmd == "DEL":
    pass  # TODO: delete this container's lease
elif cmd in ("CHECK", "GC", "STATUS"):
    pass
else:
    error(4, f"unknown CNI_COMMAND {cmd!r}", version)
"""
'''),
    code('lab5.install_plugin(ws, PLUGIN)      # <workspace>/bin/sqlite-ipam, executable'),
    md("## 2. Under the kit's runtime and bridge\n\nThe runtime runs `bridge` (the kit's, found "
       "in `sandbox net plugin-dir`) inside the node netns; bridge delegates IPAM to yours."),
    code('''
from sandbox.steps import Steps
rt_ours = lab5.lab5_runtime(ws, "ours")
film = Steps(snapshots=True)       # recorded: replay your plugin under bridge below
lab5.attach(rt_ours, n["ours"], n["c1"], steps=film)
'''),
    md("### Your plugin under the runtime, step by step\n\nThe kit's `bridge` tells the runtime "
       "what it cannot see from outside: its exec of *your* `sqlite-ipam` — the environment, the "
       "stdin it gave, what your plugin printed, its exit code — beside every change the kernel "
       "made. If the ADD failed, this is where to look."),
    code('from sandbox.viz.stepper import stepper\n\n'
         'stepper(film, title="ADD with the kit\'s bridge delegating to your sqlite-ipam")'),
    md("## 3. Under upstream's bridge\n\nSame configuration shape, but `CNI_PATH` finds Debian's "
       "Go `bridge` in `/usr/lib/cni`; it execs your Python plugin just the same."),
    code('''
rt_up = lab5.lab5_runtime(ws, "upstream")
lab5.attach(rt_up, n["upstream"], n["c2"])
'''),
    code('lab5.leases(ws)'),
    code('from sandbox.viz.net import netns_picture\n\nnetns_picture(n["c1"], n["c2"], node=n["node"])'),
    *footer(NUMBER),
]


LAB5_PLUGIN = "sqlite-ipam"


def reference_plugin() -> str:
    """The reference solution's plugin source (notebook 06b runs it beside host-local and dhcp
    when the learner has not installed their own)."""
    cell = next(c for c in CELLS if c.kind == "todo")
    scope: dict[str, Any] = {}
    exec(cell.source, scope)   # the cell only assigns PLUGIN, a string literal of this module
    return scope["PLUGIN"]


UPSTREAM_CNI = DEBIAN_CNI_DIR


def lab5_names(ws: Workspace) -> dict[str, Any]:
    tag = ws.name("node").split("-")[2]
    third = int(tag[:2], 16) % 200
    return {"node": ws.name("node"), "c1": ws.name("c1"), "c2": ws.name("c2"),
            "ours": "sbx-l5-ours", "upstream": "sbx-l5-upstream",
            "bridge_ours": f"sbx{tag}o", "bridge_up": f"sbx{tag}u",
            "subnet_ours": f"10.{23 + third % 3}.{third}.0/24",
            "subnet_up": f"10.{26 + third % 3}.{third}.0/24",
            "db": str(ws.path / "ipam.sqlite")}


def lab5_setup(ws: Workspace) -> dict[str, Any]:
    """A node netns (plays the host), two container netns, and two network configurations
    whose IPAM is the learner's ``sqlite-ipam``: one for the kit's bridge, one for upstream's."""
    from sandbox.net import netns
    n = lab5_names(ws)
    if not netns.is_netns(netns.path_of(n["node"])):
        netns.node_create(n["node"])
    for c in ("c1", "c2"):
        if not netns.is_netns(netns.path_of(n[c])):
            netns.create(n[c])
    for which in ("ours", "upstream"):
        d = ws.path / f"net.d-{which}"
        d.mkdir(exist_ok=True)
        conf = {"cniVersion": "1.0.0", "name": n[which], "type": "bridge",
                "bridge": n["bridge_ours" if which == "ours" else "bridge_up"], "isGateway": True,
                "ipam": {"type": LAB5_PLUGIN, "subnet": n[f"subnet_{'ours' if which == 'ours' else 'up'}"],
                         "dbPath": n["db"]}}
        (d / "10-lab5.conf").write_text(json.dumps(conf, indent=2))
    (ws.path / "bin").mkdir(exist_ok=True)
    return n


def install_plugin(ws: Workspace, source: str) -> Path:
    """Write the learner's plugin to ``<workspace>/bin/sqlite-ipam`` (executable)."""
    p = ws.path / "bin" / LAB5_PLUGIN
    p.parent.mkdir(exist_ok=True)
    if not source.startswith("#!"):
        source = f"#!{sys.executable}\n" + source
    p.write_text(source)
    p.chmod(0o755)
    return p


def lab5_runtime(ws: Workspace, which: str):
    """A CNI runtime running in the lab's node netns: ``ours`` finds bridge in the kit's plugin
    directory, ``upstream`` in /usr/lib/cni; both find sqlite-ipam in the workspace."""
    from sandbox.net.cni import Runtime
    from sandbox.net.plugins import plugin_dir
    n = lab5_names(ws)
    main = str(plugin_dir()) if which == "ours" else UPSTREAM_CNI
    return Runtime(conf_dir=ws.path / f"net.d-{which}", cni_path=[str(ws.path / "bin"), main],
                   cache_dir=ws.path / f"cache-{which}", node=n["node"],
                   plugin_state_dir=ws.path / "plugin-state")


def attach(rt: Any, net: str, container_netns: str, steps: Any = None) -> str:
    """ADD a container to a network and say what happened (never raises for a plugin error);
    ``steps``: record it (a snapshotting Steps films it for the stepper).

    A failed ADD is followed by a DEL, as container runtimes do when a sandbox's network set-up
    fails (kubelet and containerd tear it down): the bridge plugin may already have made the
    veth pair when the learner's IPAM plugin failed. The bridge it made stays (no DEL removes
    a bridge) with no port; on recent kernels such a bridge has the MAC 00:00:00:00:00:00,
    which both bridge plugins then fail to set back on the retry (EADDRNOTAVAIL) — so a bridge
    of the lab's node left without ports is removed too, and the retry starts clean."""
    try:
        res = rt.add(net, container_netns, steps=steps)
    except SandboxError as e:
        try:
            rt.delete(net, container_netns)
            _drop_portless_bridges(rt.node)
            undone = "DEL undid the half-done ADD; fix the plugin and run this cell again"
        except SandboxError as e2:
            undone = f"the DEL that should undo it failed too ({e2}): run `sandbox lab reset 5`"
        return f"ADD failed: {e} — {undone}"
    ips = [ip.get("address") for ip in (res.get("ips") if isinstance(res, dict) else []) or []]
    return f"ADD ok: {container_netns} got {', '.join(ips) or 'no address'}"


def _drop_portless_bridges(node: Any) -> None:
    """Delete the bridges of the lab's node netns that have no port left."""
    from sandbox.net import netns
    links = netns.snapshot(node)["links"]
    bridges = {l["name"]: l["index"] for l in links if l.get("kind") == "bridge"}
    used = {l.get("master") for l in links}

    def work() -> None:
        with netns.iproute(node) as ipr:
            for name, index in bridges.items():
                if name not in used:
                    ipr.link("del", index=index)
    netns.in_thread(work)


def leases(ws: Workspace) -> list[tuple]:
    """The rows of every table in the learner's SQLite database."""
    db = Path(lab5_names(ws)["db"])
    if not db.is_file():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = []
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            rows += [(table, *r) for r in con.execute(f'SELECT * FROM "{table}"')]
        return rows
    finally:
        con.close()


def call_plugin(plugin: Path, command: str, conf: dict[str, Any], container_id: str = "sbx-check",
                ifname: str = "eth0", timeout: float = 20) -> tuple[int, Any, str]:
    """Exec a CNI plugin once, as a runtime would; (exit code, parsed stdout or text, stderr)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
           "CNI_CONTAINERID": container_id, "CNI_NETNS": "/proc/self/ns/net",
           "CNI_IFNAME": ifname, "CNI_PATH": str(plugin.parent)}
    cp = subprocess.run([str(plugin)], input=json.dumps(conf).encode(), env=env,
                        capture_output=True, timeout=timeout)
    out = cp.stdout.decode(errors="replace")
    try:
        parsed: Any = json.loads(out) if out.strip() else None
    except ValueError:
        parsed = out
    return cp.returncode, parsed, cp.stderr.decode(errors="replace")


def _plugin_error(rc: int, out: Any, err: str) -> str:
    if isinstance(out, dict) and "msg" in out:
        return f"it answered error {out.get('code')}: {out['msg']}"
    if isinstance(out, str) and out.strip():
        return f"it printed something that is not JSON: {out.strip()[:80]!r}"
    return f"it exited {rc} with {err.strip().splitlines()[-1] if err.strip() else 'no output'}"


def _ips_of(result: Any) -> list[str]:
    if not isinstance(result, dict):
        return []
    return [ip.get("address", "") for ip in result.get("ips") or [] if isinstance(ip, dict)]


def checks(ws: Workspace) -> Iterable[Result]:
    # Long on purpose: the lab's table of checks, in the order the learner meets them.
    from sandbox.net import netns
    n = lab5_names(ws)
    node_ok = netns.is_netns(netns.path_of(n["node"]))
    cached = any(p.is_file() for w in ("ours", "upstream")
                 for p in (ws.path / f"cache-{w}").rglob("*"))
    if cached and not node_ok:
        yield Result("the node namespace is alive", False,
                     f"attachments are cached but the node netns {n['node']} is gone, so they can "
                     "never be deleted cleanly: run `sandbox lab reset 5` and start again",
                     "failcheck")
        return
    plugin = ws.path / "bin" / LAB5_PLUGIN
    if not plugin.is_file() or not os.access(plugin, os.X_OK):
        yield gate("your plugin is installed", False,
                    "no executable bin/sqlite-ipam yet: lab5.install_plugin(ws, PLUGIN)")
        return
    yield Result("your plugin is installed", True)
    conf = {"cniVersion": "1.0.0", "name": "sbx-l5-check", "type": "bridge",
            "ipam": {"type": LAB5_PLUGIN, "subnet": "10.99.0.0/29"}}
    rc, out, err = call_plugin(plugin, "VERSION", conf)
    ok = rc == 0 and isinstance(out, dict) and "1.0.0" in (out.get("supportedVersions") or [])
    yield gate("VERSION answers with the versions it supports (incl. 1.0.0)", ok,
                "" if ok else _plugin_error(rc, out, err))
    if not ok:
        return
    with tempfile.TemporaryDirectory(prefix="sbx-l5-") as tmp:
        conf["ipam"]["dbPath"] = str(Path(tmp) / "check.sqlite")
        subnet = ipaddress.ip_network("10.99.0.0/29")
        got = []
        problem = ""
        for cid in ("sbx-x1", "sbx-x2"):
            rc, out, err = call_plugin(plugin, "ADD", conf, cid)
            ips = _ips_of(out)
            if rc != 0 or not ips:
                problem = (f"ADD for {cid}: " + (_plugin_error(rc, out, err) if rc != 0 else
                           "the result has no ips (print {'cniVersion':…, 'ips': [{'address': "
                           "'10.x.y.z/24', 'gateway': …}]})"))
                break
            try:
                iface = ipaddress.ip_interface(ips[0])
            except ValueError:
                problem = f"ADD for {cid}: {ips[0]!r} is not address/prefix"
                break
            if iface.ip not in subnet or iface.ip in (subnet.network_address,
                                                      subnet.broadcast_address, subnet[1]):
                problem = (f"ADD for {cid} gave {iface}: not a usable host address of {subnet} "
                           "(network, broadcast and the gateway .1 are not)")
                break
            got.append(iface.ip)
        if not problem and len(set(got)) != 2:
            problem = f"two containers got the same address {got[0]}: a lease must be unique"
        if not problem:
            for _ in range(2):   # DEL twice: the spec wants the second to succeed too
                rc, out, err = call_plugin(plugin, "DEL", conf, "sbx-x1")
                if rc != 0:
                    problem = "DEL: " + _plugin_error(rc, out, err)
                    break
        if not problem:
            rc, out, err = call_plugin(plugin, "ADD", conf, "sbx-x3")
            rc2, out2, _ = call_plugin(plugin, "ADD", conf, "sbx-x4")
            again = [ipaddress.ip_interface(a).ip for a in _ips_of(out) + _ips_of(out2)]
            if rc != 0 or got[0] not in again:
                problem = (f"after DEL of sbx-x1 its address {got[0]} was not handed out again "
                           "(the lease row must be deleted)")
        yield Result("your plugin allocates unique addresses, releases them on DEL (twice)",
                     not problem, problem)
    rows = leases(ws)
    for which, c in (("ours", "c1"), ("upstream", "c2")):
        label = (f"{n[c]} is attached through the kit's bridge" if which == "ours" else
                 f"{n[c]} is attached through upstream's bridge (/usr/lib/cni/bridge)")
        if not node_ok:
            yield Result(label, False, "run the setup cell: lab5.lab5_setup(ws)")
            continue
        rt = lab5_runtime(ws, which)
        atts = rt.attachments(network=n[which])
        if not atts:
            yield Result(label, False,
                         f"no cached attachment of {n[c]} to {n[which]}: run "
                         f"lab5.attach(rt_{which}, '{n[which]}', '{n[c]}') once your ADD works")
            continue
        if not netns.is_netns(netns.path_of(n[c])):
            yield Result(label, False, f"the container netns {n[c]} is gone: run "
                         "`sandbox lab reset 5`", "failcheck")
            continue
        eth0 = {l["name"]: l for l in netns.snapshot(n[c])["links"]}.get("eth0")
        addrs = eth0["addrs"] if eth0 else []
        in_db = [r for r in rows if any(str(x).split("/")[0] in {a.split("/")[0] for a in addrs}
                                        for x in r[1:])]
        hint = ""
        if not eth0:
            hint = f"{n[c]} has no eth0"
        elif not addrs:
            hint = f"eth0 in {n[c]} has no address"
        elif not in_db:
            hint = (f"eth0 in {n[c]} has {', '.join(addrs)} but no row of {Path(n['db']).name} "
                    "holds it: did the ADD go through your plugin?")
        yield Result(label + " with an address from your database", not hint, hint)


def reset(ws: Workspace) -> list[str]:
    from sandbox.net import netns
    done = []
    if not ws.names():
        return done
    n = lab5_names(ws)
    node_ok = netns.is_netns(netns.path_of(n["node"]))
    for which, c in (("ours", "c1"), ("upstream", "c2")):
        if node_ok and (ws.path / f"net.d-{which}").is_dir():
            rt = lab5_runtime(ws, which)
            try:
                rt.delete(n[which], n[c] if netns.is_netns(netns.path_of(n[c])) else None,
                          container_id=rt.container_id_for(n[c]))
                done.append(f"CNI DEL {n[c]} from {n[which]}")
            except Exception as e:  # noqa: BLE001 - the netns go anyway
                done.append(f"CNI DEL {n[c]} from {n[which]} failed ({e}); deleting the netns")
    for key in ("c1", "c2", "node"):
        if netns.path_of(n[key]).exists():
            netns.delete(n[key], missing_ok=True)
            done.append(f"deleted netns {n[key]}")
    return done


def mistake(ws: Workspace) -> str:
    """A state learners get into: the node namespace deleted under cached attachments.
    Returns what the check then says."""
    from sandbox.net import netns
    netns.delete(lab5_names(ws)["node"])
    return "run `sandbox lab reset 5`"
