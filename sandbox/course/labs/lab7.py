"""Lab 7: troubleshooting a CNI network — a leaked IP, a stale bridge, a missing route (slides
42–44; the three problems CNI users report most, ../shared/reference/cni.md §6).

The lab breaks a small two-node network three ways; the learner finds each cause with the kit's
own views (host-local's leases, the runtime's cache, netlink snapshots, route tables), writes the
diagnosis down, predicts where a lost ping dies, and repairs it. The checks compare every answer
with the live state.

The lab's notebook (``CELLS``), its checks, the helpers its cells call and the mistake the tests
make live here together (see :mod:`sandbox.course.labs`).
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any, Iterable

from sandbox.course.labs import Result, Workspace, gate
from sandbox.course.labs.authoring import code, footer, header, md, todo
from sandbox.errors import SandboxError

# The lab's declaration, read by sandbox.course.labs: the same names in every lab module (and
# CELLS opens with header(...) and a set-up cell in each), the values are this lab's: data.
NUMBER = 7
SLUG = "troubleshooting"
TITLE = "Troubleshooting a CNI network: a leaked IP, a stale bridge, a missing route"
FOLLOWS = "06b"
OBJECTIVES = (
    'find which container leaked an address from the IPAM store and the CNI cache, and free '
    'it the way the spec allows (DEL)',
    'recognise a bridge left by an older configuration and remove it safely',
    'follow a lost ping hop by hop to the missing route, and add it',
)
INTRO = """
The three problems CNI users report most: *no IP addresses available* although few containers
run (a container went away without a DEL), *failed to set bridge addr … already has an IP
address different from …* (a bridge left from an older configuration), and pods that cannot
reach each other across nodes (a missing route). The first cell breaks a small network of two
node namespaces all three ways. For each problem: look with the kit's own views, **write your
diagnosis down** (`ws.answer`), then repair it. The check compares every answer with the live
state. Everything lives in namespaces named `sbx-l7-…`; nothing else on the machine is touched."""

CHECKS = [
    "the lab's broken network is set up",
    "you named the leaked address and the container that leaked it",
    "the leaked address is free again and app got an address",
    "you named the stale address on the web bridge",
    "web is attached and its bridge holds only the web gateway",
    "you predicted whether c1's ping request reaches far",
    "you named the node and the destination of the missing route",
    "c1 reaches far, and far answers",
]
STUDENT_HINT = "host-local keeps one file per address"

CELLS = [
    *header(NUMBER, TITLE, INTRO, OBJECTIVES, FOLLOWS),
    code('''
import ipaddress

from sandbox.course import labs
from sandbox.course.labs import lab7
from sandbox.net import netns, topology
from sandbox.viz import rows_table

ws = labs.workspace(7)
n = lab7.setup(ws)            # two nodes, three networks, and three faults (idempotent)
print(lab7.symptoms(ws))
'''),
    md("## 1. No IP addresses available\n\nThe network `sbx-l7-small` hands out three addresses "
       "(a /29 whose range starts at .4). Only two containers run (`c1`, `c2`), yet `app` got none. "
       "Look at what host-local keeps (one file per address, holding the container ID) and what "
       "the runtime cached (one entry per attachment, with its netns), and which of those netns "
       "still exist:"),
    code('rows_table(lab7.views(ws, "leases"))'),
    md("**TODO**: record the leaked address and the container ID that still holds it "
       "(`ws.answer(\"leaked_ip\", \"10.…\")`, `ws.answer(\"leaked_by\", \"sbx-l7-…\")`), then "
       "free it the way the runtime should have: a DEL for that attachment "
       "(`rt1.delete(n[\"small\"], container_id=…)` — DEL works without the netns), and ADD `app` "
       "again (`rt1.add(n[\"small\"], n[\"app\"])`)."),
    todo('''
rt1 = lab7.runtime(ws, "n1")
ghost = next(a for a in rt1.attachments(network=n["small"]) if not netns.exists(a.netns))
ws.answer("leaked_by", ghost.container_id)
ws.answer("leaked_ip", ghost.result["ips"][0]["address"].split("/")[0])
rt1.delete(n["small"], container_id=ghost.container_id)
rt1.add(n["small"], n["app"])
''', '''
rt1 = lab7.runtime(ws, "n1")
# TODO: ws.answer("leaked_ip", …); ws.answer("leaked_by", …)
# TODO: DEL the leaked attachment, then ADD n["app"] to n["small"]
'''),
    md("## 2. A stale bridge\n\n`sbx-l7-web` was reconfigured to a new subnet; its bridge was "
       "left from the old one. Look at the node's links and their addresses:"),
    code('rows_table(lab7.views(ws, "node"))'),
    md("**TODO**: record the stale address (`ws.answer(\"stale_address\", \"10.…/24\")`), then "
       "repair: no plugin call owns a bridge, so remove it yourself inside the node "
       "(`netns.run(n[\"n1\"], [\"ip\", \"link\", \"del\", n[\"br_web\"]], check=True)`) and ADD "
       "`web` again (the plugin makes a fresh bridge)."),
    todo('''
web = next(l for l in netns.snapshot(n["n1"])["links"] if l["name"] == n["br_web"])
stale = [a for a in web["addrs"] if ":" not in a
         and ipaddress.ip_interface(a) not in ipaddress.ip_network(n["subnet_web"])]
ws.answer("stale_address", stale[0])
netns.run(n["n1"], ["ip", "link", "del", n["br_web"]], check=True)
rt1.add(n["web_net"], n["web"])
''', '''
# TODO: ws.answer("stale_address", …)
# TODO: delete the bridge inside the node, then ADD n["web"] to n["web_net"]
'''),
    md("## 3. Pods on two nodes that cannot talk\n\n`c1` (on node `n1`) pings `far` (on node `n2`) "
       "and gets no reply. First **predict**: does c1's echo *request* arrive at far at all? Then "
       "look at every route table on the way:"),
    code('rows_table(lab7.views(ws, "routes"))'),
    md("**TODO**: record your prediction (`ws.answer(\"request_reaches_far\", True or False)`) "
       "and the missing route (`ws.answer(\"missing_route\", {\"node\": <netns name>, \"dst\": "
       "\"<subnet>\"})`), then add it with `topology.route(node, dst, via)` — via the other node's "
       "wire address — and ping again: `lab7.ping(ws)`."),
    todo('''
ws.answer("request_reaches_far", True)      # n1 knows far's subnet: the request arrives
ws.answer("missing_route", {"node": n["n2"], "dst": n["subnet_small"]})   # the reply has no way back
topology.route(n["n2"], n["subnet_small"], n["wire1"].split("/")[0])
lab7.ping(ws)
''', '''
# TODO: ws.answer("request_reaches_far", …); ws.answer("missing_route", {"node": …, "dst": …})
# TODO: topology.route(…), then lab7.ping(ws)
'''),
    *footer(NUMBER),
]


# -- names and the broken world ---------------------------------------------------------------------

def names(ws: Workspace) -> dict[str, Any]:
    tag = ws.name("n1").split("-")[2]
    t = int(tag[:2], 16)
    n: dict[str, Any] = {k: ws.name(k) for k in ("n1", "n2", "c1", "c2", "c3",
                                                  "app", "web", "far")}
    n.update(small="sbx-l7-small", web_net="sbx-l7-web", far_net="sbx-l7-far",
             br_small=f"sbx{tag}s", br_web=f"sbx{tag}w", br_far=f"sbx{tag}f",
             subnet_small=f"10.77.{t}.0/29", subnet_web=f"10.78.{t}.0/24",
             stale=f"10.79.{t}.1/24", subnet_far=f"10.80.{t}.0/24",
             wire1=f"10.76.{t}.1/30", wire2=f"10.76.{t}.2/30")
    return n


def _confs(n: dict[str, Any]) -> dict[str, dict[str, Any]]:
    def bridge(name: str, br: str, subnet: str, **ipam: str) -> dict[str, Any]:
        return {"cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": br,
                "isGateway": True, "ipam": {"type": "host-local", "subnet": subnet,
                                            "routes": [{"dst": "0.0.0.0/0"}], **ipam}}
    small_start = n["subnet_small"].rsplit(".", 1)[0] + ".4"   # three addresses: .4 .5 .6
    return {"n1": {n["small"]: bridge(n["small"], n["br_small"], n["subnet_small"],
                                      rangeStart=small_start),
                   n["web_net"]: bridge(n["web_net"], n["br_web"], n["subnet_web"])},
            "n2": {n["far_net"]: bridge(n["far_net"], n["br_far"], n["subnet_far"])}}


def runtime(ws: Workspace, node: str) -> Any:
    """The CNI runtime of node ``n1`` or ``n2`` (the kit's plugins, run inside that node)."""
    from sandbox.net.cni import Runtime
    from sandbox.net.plugins import plugin_dir
    n = names(ws)
    d = ws.path / node
    (d / "net.d").mkdir(parents=True, exist_ok=True)
    for name, conf in _confs(n)[node].items():
        (d / "net.d" / f"10-{name}.conf").write_text(json.dumps(conf, indent=2))
    return Runtime(conf_dir=d / "net.d", cni_path=str(plugin_dir()), cache_dir=d / "cache",
                   node=n[node], plugin_state_dir=d / "state")


def setup(ws: Workspace) -> dict[str, Any]:
    """Build the network and break it three ways (once: a second call changes nothing)."""
    from sandbox.net import netns, topology
    n = names(ws)
    if (ws.path / "broken.json").exists():
        return n
    for node in ("n1", "n2"):
        if not netns.exists(n[node]):
            netns.node_create(n[node])
    topology.wire(n["n1"], n["n2"], f"{n['br_small'][:-1]}x", f"{n['br_small'][:-1]}y",
                  n["wire1"], n["wire2"])
    rt1, rt2 = runtime(ws, "n1"), runtime(ws, "n2")
    for c in ("c1", "c2", "c3", "app", "web", "far"):
        if not netns.exists(n[c]):
            netns.create(n[c])
    got = {c: rt1.add(n["small"], n[c]) for c in ("c1", "c2", "c3")}
    netns.delete(n["c3"])            # fault 1: c3 went away without a DEL
    # fault 2: the web bridge still holds the gateway of the subnet web used to have
    netns.run(n["n1"], ["ip", "link", "add", n["br_web"], "type", "bridge"], check=True)
    netns.run(n["n1"], ["ip", "addr", "add", n["stale"], "dev", n["br_web"]], check=True)
    netns.run(n["n1"], ["ip", "link", "set", n["br_web"], "up"], check=True)
    rt2.add(n["far_net"], n["far"])
    # fault 3: n1 knows far's subnet, n2 was never told where n1's pods are
    topology.route(n["n1"], n["subnet_far"], n["wire2"].split("/")[0])
    (ws.path / "broken.json").write_text(json.dumps({
        "leaked_by": n["c3"], "leaked_ip": got["c3"]["ips"][0]["address"].split("/")[0]}))
    return n


def symptoms(ws: Workspace) -> str:
    """What a user sees: the two failing ADDs, and the ping that gets no reply."""
    from sandbox.net import topology
    n = names(ws)
    rt1 = runtime(ws, "n1")
    lines = []
    for net, c in ((n["small"], "app"), (n["web_net"], "web")):
        if rt1.cached(net, n[c]):
            lines.append(f"ADD {c} to {net}: ok (already attached)")
            continue
        try:
            rt1.add(net, n[c])
            lines.append(f"ADD {c} to {net}: ok")
        except SandboxError as e:
            lines.append(f"ADD {c} to {net}: {str(e).split('. The plugin failed')[0]}")
    lines.append(ping(ws))
    return "\n".join(lines)


def ping(ws: Workspace) -> str:
    """c1 pings far (one packet, only between the lab's namespaces)."""
    from sandbox.net import netns, topology
    n = names(ws)
    far = topology.first_address(n["far"]) if netns.exists(n["far"]) else None
    if not far or not netns.exists(n["c1"]):
        return "ping c1 → far: one of them is gone (sandbox lab reset 7, then start again)"
    r = netns.ping(n["c1"], far, timeout=1)
    return f"ping c1 → far ({far}): " + ("reply" if r.returncode == 0 else "no reply")


def views(ws: Workspace, what: str) -> list[dict[str, str]]:
    """The kit's views of one part of the lab, as rows (``rows_table`` draws them): ``leases``
    (host-local's files, the runtime's cache, which netns exist), ``node`` (node n1's links and
    addresses) or ``routes`` (every route table between c1 and far)."""
    from sandbox.net import netns, topology
    from sandbox.net.plugins.host_local import Store
    n = names(ws)
    if what == "leases":
        rows = []
        for ip, holder in Store(ws.path / "n1" / "state" / "networks", n["small"]).entries():
            cid, _, ifname = holder.partition("\r\n")
            rows.append({"what": "host-local lease", "address": ip, "held by": f"{cid} {ifname}",
                         "its netns": ""})
        for a in runtime(ws, "n1").attachments(network=n["small"]):
            rows.append({"what": "runtime cache",
                         "address": ", ".join(ip["address"] for ip in a.result.get("ips", [])),
                         "held by": f"{a.container_id} {a.ifname}",
                         "its netns": f"{a.netns} ({'exists' if netns.exists(a.netns) else 'gone'})"})
        return rows
    if what == "node":
        return [{"link": l["name"], "kind": l["kind"] or "", "state": "UP" if l["up"] else "DOWN",
                 "addresses": ", ".join(a for a in l["addrs"] if ":" not in a)}
                for l in netns.snapshot(n["n1"])["links"]]
    if what == "routes":
        return [{"namespace": f"{k} ({n[k]})",
                 "addresses": ", ".join(a for l in netns.snapshot(n[k])["links"] for a in l["addrs"]
                                        if ":" not in a and not a.startswith("127.")),
                 "routes": "\n".join(topology.route_lines(n[k]))}
                for k in ("c1", "n1", "n2", "far") if netns.exists(n[k])]
    raise SandboxError(f"views(ws, {what!r}): ask for 'leases', 'node' or 'routes'.")


# -- checks ---------------------------------------------------------------------------------------------

def checks(ws: Workspace) -> Iterable[Result]:
    # Long on purpose: the lab's table of checks, in the order the learner meets them.
    from sandbox.net import netns, topology
    from sandbox.net.plugins.host_local import Store
    n = names(ws)
    broken = ws.path / "broken.json"
    alive = all(netns.exists(n[k]) for k in ("n1", "n2", "c1", "far"))
    yield gate(CHECKS[0], broken.exists() and alive,
               "run the lab's first cell: lab7.setup(ws)" if not broken.exists() else
               "a node or c1/far was deleted: run `sandbox lab reset 7`, then start again")
    if not (broken.exists() and alive):
        return
    truth = json.loads(broken.read_text())
    ans = ws.answers()
    ghost = truth["leaked_by"]
    cache = {a.container_id: a for a in runtime(ws, "n1").attachments(network=n["small"])}
    leased = dict(Store(ws.path / "n1" / "state" / "networks", n["small"]).entries())
    ghost_ip = truth["leaked_ip"]
    given = (ans.get("leaked_ip"), ans.get("leaked_by"))
    hint = ""
    if given == (None, None):
        hint = ("host-local keeps one file per address, holding the container ID; the runtime "
                "caches each attachment with its netns: `lab7.views(ws, \"leases\")` shows which "
                "holder's netns is gone — record ws.answer('leaked_ip', …) and "
                "ws.answer('leaked_by', …)")
    elif given[1] != ghost:
        hint = (f"{given[1]!r} is not it: which cached attachment's netns no longer exists?")
    elif given[0] != ghost_ip:
        hint = f"{given[1]} is right; the address it holds is not {given[0]!r}"
    diagnosed = not hint
    yield Result(CHECKS[1], diagnosed, hint)
    app = runtime(ws, "n1").cached(n["small"], n["app"])
    hint = ""
    if leased.get(ghost_ip, "").startswith(ghost) or ghost in cache:
        # the repair's hint names the culprit only once the learner has found it
        hint = (f"{ghost_ip} is still held by {ghost}: DEL that attachment — "
                f"rt1.delete(n['small'], container_id='{ghost}')" if diagnosed else
                "the leaked address is still held: find it first (the check above), then DEL "
                "its attachment with the runtime")
    elif app is None or topology.first_address(n["app"]) is None:
        hint = "the address is free: now ADD app — rt1.add(n['small'], n['app'])"
    yield Result(CHECKS[2], not hint, hint)
    # the stale bridge
    hint = ""
    if ans.get("stale_address") is None:
        hint = ("`lab7.views(ws, \"node\")` lists the node's links: which address on the web "
                "bridge is not in web's subnet? record ws.answer('stale_address', …)")
    elif ans["stale_address"] != n["stale"]:
        hint = f"{ans['stale_address']!r} is not the stale one: it is outside {n['subnet_web']}"
    diagnosed = not hint
    yield Result(CHECKS[3], diagnosed, hint)
    links = {l["name"]: l for l in netns.snapshot(n["n1"])["links"]}
    br = links.get(n["br_web"])
    gw = str(next(ipaddress.ip_network(n["subnet_web"]).hosts())) + "/24"
    v4 = [a for a in (br or {}).get("addrs", []) if ":" not in a]
    hint = ""
    if br is not None and n["stale"] in v4:
        hint = (f"{n['br_web']} still holds {n['stale']}, so every ADD fails: no plugin call "
                "owns a bridge — delete it inside the node (ip link del), then ADD web" if diagnosed
                else "web's ADD still fails: find the stale address first (the check above)")
    elif runtime(ws, "n1").cached(n["web_net"], n["web"]) is None:
        hint = "the bridge is clean: now ADD web — rt1.add(n['web_net'], n['web'])"
    elif v4 != [gw]:
        hint = f"{n['br_web']} holds {', '.join(v4) or 'nothing'}; web's gateway {gw} alone belongs there"
    yield Result(CHECKS[4], not hint, hint)
    # the missing route
    p = ans.get("request_reaches_far")
    hint = "" if p is True else (
        "record ws.answer('request_reaches_far', True or False) before you repair" if p is None else
        f"n1 has a route to {n['subnet_far']} (look at n1's table): the request does arrive — "
        "it is far's reply that gets lost")
    yield Result(CHECKS[5], not hint, hint)
    m = ans.get("missing_route") or {}
    hint = ""
    if not m:
        hint = ("`lab7.views(ws, \"routes\")`: follow the request from c1 to far, then the reply "
                "from far to c1; record ws.answer('missing_route', {'node': …, 'dst': …})")
    elif m.get("node") != n["n2"]:
        hint = f"{m.get('node')!r} can already route it; which node has no way back to c1?"
    elif m.get("dst") != n["subnet_small"]:
        hint = f"on {n['n2']} the missing destination is the subnet c1 lives in, not {m.get('dst')!r}"
    diagnosed = not hint
    yield Result(CHECKS[6], diagnosed, hint)
    routes = topology.route_lines(n["n2"])
    has = any(r.startswith(n["subnet_small"] + " via") for r in routes)
    ok = ping(ws).endswith("reply") and not ping(ws).endswith("no reply")
    hint = "" if ok else (
        "find the missing route first (the check above)" if not diagnosed and not has else
        f"{n['n2']} has no route back to {n['subnet_small']}: topology.route(n['n2'], "
        f"n['subnet_small'], '{n['wire1'].split('/')[0]}')" if not has else
        "the route is there but far still does not answer: look at far's and n2's routes again")
    yield Result(CHECKS[7], ok, hint)


def reset(ws: Workspace) -> list[str]:
    from sandbox.net import netns
    done = []
    if not ws.names():
        return done
    n = names(ws)
    for key in ("c1", "c2", "c3", "app", "web", "far", "n1", "n2"):
        if netns.path_of(n[key]).exists():
            netns.delete(n[key], missing_ok=True)
            done.append(f"deleted netns {n[key]}")
    return done


def mistake(ws: Workspace) -> str:
    """On the finished lab: the route back from n2 is removed again. Returns what the check
    then says."""
    from sandbox.net import netns
    n = names(ws)
    netns.run(n["n2"], ["ip", "route", "del", n["subnet_small"]], check=True)
    return f"{n['n2']} has no route back to {n['subnet_small']}"
