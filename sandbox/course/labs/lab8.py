"""Lab 8: complete a CNM remote driver's Join (slides 52–56; libnetwork docs/remote.md).

The learner predicts the order of libnetwork's calls for one container connect, then writes the
``Join`` of a remote driver (a subclass of the kit's :class:`sandbox.net.cnm.driver.BridgeDriver`,
in a file of its own), starts it as a long-running process in the lab's node netns, and lets the
kit's mini libnetwork (:mod:`sandbox.net.cnm.controller`) connect two containers through it.
The checks read the driver's own log, the controller's record and the kernel.

The lab's notebook (``CELLS``), its checks, the helpers its cells call and the mistake the tests
make live here together (see :mod:`sandbox.course.labs`).
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import tempfile
from pathlib import Path
from typing import Any, Iterable

from sandbox.course.labs import Result, Workspace, gate
from sandbox.course.labs.authoring import code, footer, header, md, todo
from sandbox.errors import SandboxError

# The lab's declaration, read by sandbox.course.labs: the same names in every lab module (and
# CELLS opens with header(...) and a set-up cell in each), the values are this lab's: data.
NUMBER = 8
SLUG = "cnm-join"
TITLE = "Complete a CNM remote driver's Join"
FOLLOWS = "09"
OBJECTIVES = (
    "predict the order of libnetwork's remote-driver calls for one container connect",
    "write a CNM driver's Join: make the interface in the driver's own namespace and answer "
    "with its name",
    'see that libnetwork, not the driver, configures the sandbox (slide 56)',
)
INTRO = """
Slide 56: a CNM *remote* driver is a long-running service that libnetwork calls over HTTP. Its
`Join` is the heart of connecting a container — and its limits are slide 56's point: the driver
makes an interface **in its own namespace** and answers with its *name*; libnetwork moves it into
the container's sandbox and configures it. You will predict libnetwork's calls, write `Join`, run
your driver, and connect two containers through the kit's mini libnetwork. Everything runs in
namespaces named `sbx-l8-…`."""

CHECKS = [
    "you predicted the calls of one container connect, in order",
    "your driver is installed and answers Plugin.Activate",
    "Join answers an interface name, a prefix and the gateway",
    "your driver made the veth in its own netns and left the sandboxes alone",
    "c1 and c2 each have eth0 with their address, and the host ends hang on the bridge",
    "c1 reaches c2",
]
STUDENT_HINT = "record your prediction"

DRIVER_HEAD = r'''
DRIVER = r"""
import sys
from sandbox.net.cnm.driver import BridgeDriver, main


class MyDriver(BridgeDriver):
    # Inherited and done: Plugin.Activate, GetCapabilities, CreateNetwork (the bridge, with the
    # gateway address), CreateEndpoint (a MAC), Leave, DeleteEndpoint (deletes the veth pair),
    # the external connectivity pair, and the whole IpamDriver.
    #
    # self.endpoint(req): the endpoint's record: {"network", "address", "mac",
    #                     "host_veth": a name for the host end, "sandbox_veth": one for the other}
    # self.networks[ep["network"]]: {"bridge", "pool", "gateway" (CIDR)}
    # self.ipr: a pyroute2 IPRoute in the driver's own netns (the node); self.link_index(name)
    # self.kernel("what", **detail): log a kernel change (the checks read the log)

    def Join(self, req):
        ep = self.endpoint(req)
        net = self.networks[ep["network"]]
'''

DRIVER_FOOT = r'''

if __name__ == "__main__":
    sys.exit(main(driver_class=MyDriver))
"""
'''

CELLS = [
    *header(NUMBER, TITLE, INTRO, OBJECTIVES, FOLLOWS),
    code('''
from sandbox.course import labs
from sandbox.course.labs import lab8
from sandbox.net import netns
from sandbox.net.cnm import api
from sandbox.viz import rows_table

ws = labs.workspace(8)
n = lab8.setup(ws)           # a node netns (plays the host) and two containers' netns
n
'''),
    md("## 1. Predict\n\nIn notebook 09 libnetwork made a network with three calls. For **one "
       "container connect** (`docker network connect`), which remote-driver calls does it make, "
       "in which order? Name them like `\"NetworkDriver.Join\"` or `\"IpamDriver.RequestAddress\"`; "
       "the whole protocol is in `api.ENDPOINTS`.\n\n**TODO**: `ws.answer(\"connect_calls\", [ … ])`"),
    todo('''
ws.answer("connect_calls", ["IpamDriver.RequestAddress", "NetworkDriver.CreateEndpoint",
                            "NetworkDriver.Join", "NetworkDriver.ProgramExternalConnectivity"])
''', '''
ws.answer("connect_calls", [])      # TODO: your prediction, in order
'''),
    md("## 2. Write `Join`\n\nlibnetwork sends `{NetworkID, EndpointID, SandboxKey, Options}`. "
       "Your reply must name an interface **that exists in the driver's own netns** "
       "(`InterfaceName: {SrcName, DstPrefix}`), and give the `Gateway` (a bare IP). "
       "`SandboxKey` is the container's netns path: do not open it — configuring the sandbox is "
       "libnetwork's job.\n\n**TODO**: make a veth pair `ep[\"host_veth\"]` ⇄ "
       "`ep[\"sandbox_veth\"]`, put the host end on the bridge and set it up, log it with "
       "`self.kernel(…)`, and answer `SrcName` = the other end, `DstPrefix` = `\"eth\"`, "
       "`Gateway` = the network's gateway without its prefix."),
    todo(DRIVER_HEAD + r'''
        self.ipr.link("add", ifname=ep["host_veth"], kind="veth", peer={"ifname": ep["sandbox_veth"]})
        host = self.link_index(ep["host_veth"])
        self.ipr.link("set", index=host, master=self.link_index(net["bridge"]), state="up")
        self.kernel("veth pair for the endpoint", host_end=ep["host_veth"], other_end=ep["sandbox_veth"])
        return {"InterfaceName": {"SrcName": ep["sandbox_veth"], "DstPrefix": "eth"},
                "Gateway": net["gateway"].split("/")[0]}
''' + DRIVER_FOOT, DRIVER_HEAD + r'''
        # TODO: the veth pair, the host end on the bridge and up, self.kernel(...), and the reply
        return {}
''' + DRIVER_FOOT),
    code('''
lab8.install_driver(ws, DRIVER)     # <workspace>/driver.py
driver = lab8.start_driver(ws)      # a process in the node netns, listening on a unix socket
driver.pid, driver.socket
'''),
    md("## 3. Connect two containers through your driver\n\nThe kit's mini libnetwork activates "
       "the plugin, creates a network (IPAM pool + gateway, `CreateNetwork`), then connects each "
       "container. Compare the calls with your prediction:"),
    code('''
ctl = lab8.controller(ws)
print(lab8.connect(ws, ctl, "c1"))
print(lab8.connect(ws, ctl, "c2"))
rows_table(lab8.calls(ctl))
'''),
    code('from sandbox.viz.net import netns_picture\n\nnetns_picture(n["c1"], n["c2"], node=n["node"])'),
    code('print(lab8.ping(ws))'),
    *footer(NUMBER),
]


# -- names, the driver, the controller ---------------------------------------------------------------

def names(ws: Workspace) -> dict[str, Any]:
    tag = ws.name("node").split("-")[2]
    t = int(tag[:2], 16)
    return {"node": ws.name("node"), "c1": ws.name("c1"), "c2": ws.name("c2"),
            "pool": f"10.81.{t}.0/24", "network": "sbx-l8-net"}


def setup(ws: Workspace) -> dict[str, Any]:
    from sandbox.net import netns
    n = names(ws)
    if not netns.exists(n["node"]):
        netns.node_create(n["node"])
    for c in ("c1", "c2"):
        if not netns.exists(n[c]):
            netns.create(n[c])
    return n


def install_driver(ws: Workspace, source: str) -> Path:
    """Write the learner's driver to ``<workspace>/driver.py``."""
    p = ws.path / "driver.py"
    p.write_text(source.lstrip("\n"))
    return p


def _socket_dir(ws: Workspace) -> Path:
    """A short directory of the lab's own for the socket (a unix socket path has 107 bytes)."""
    rec = ws.path / "socket-dir"
    if rec.exists():
        d = Path(rec.read_text())
        if d.is_dir():
            return d
    d = Path(tempfile.mkdtemp(prefix="sbx-l8-"))
    rec.write_text(str(d))
    return d


def _stop_recorded(ws: Workspace) -> str | None:
    """Stop the driver a previous run started (by the PID it recorded, if it is still that
    process), and remove its socket."""
    info = ws.path / "driver.json"
    if not info.exists():
        return None
    d = json.loads(info.read_text())
    info.unlink()
    try:
        stat = Path(f"/proc/{d['pid']}/stat").read_text()
    except OSError:
        stat = ""
    said = None
    if stat and stat.rsplit(")", 1)[1].split()[19] == d.get("start"):
        os.kill(d["pid"], signal.SIGTERM)
        said = f"stopped the lab's CNM driver (pid {d['pid']})"
    Path(d["socket"]).unlink(missing_ok=True)
    return said


def start_driver(ws: Workspace) -> Any:
    """Start ``driver.py`` in the node netns (a driver a previous run left is stopped first)."""
    from sandbox.net.cnm.driver import spawn
    n = names(ws)
    script = ws.path / "driver.py"
    if not script.exists():
        raise SandboxError("There is no driver.py yet.", hint="Run lab8.install_driver(ws, DRIVER).")
    _stop_recorded(ws)
    state = ws.path / "driver-state"
    state.mkdir(exist_ok=True)
    (state / "driver.log").unlink(missing_ok=True)
    d = spawn(_socket_dir(ws) / "plugin.sock", n["node"], state_dir=state, script=script)
    start = Path(f"/proc/{d.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    (ws.path / "driver.json").write_text(json.dumps({"pid": d.pid, "start": start,
                                                     "socket": str(d.socket)}))
    return d


def controller(ws: Workspace) -> Any:
    """The mini libnetwork on the lab's driver, activated, with the lab's network created."""
    from sandbox.net.cnm.controller import Controller
    n = names(ws)
    info = json.loads((ws.path / "driver.json").read_text())
    ctl = Controller(info["socket"], n["node"])
    ctl.activate()
    ctl.create_network(n["network"], pool=n["pool"])
    _save_calls(ws, ctl)
    return ctl


def _save_calls(ws: Workspace, ctl: Any) -> None:
    (ws.path / "calls.json").write_text(json.dumps(
        [{"path": c.path, "status": c.status, "note": c.note} for c in ctl.calls], indent=1))


def connect(ws: Workspace, ctl: Any, which: str) -> str:
    """Connect container ``which`` (``c1``/``c2``); a sentence, never an exception."""
    n = names(ws)
    net = next(x for x in ctl.networks.values() if x.name == n["network"])
    try:
        ep = ctl.connect(net, n[which], which)
        result = f"connect {which}: ok, {ep.ifname} {ep.address} in {n[which]}"
    except SandboxError as e:
        result = f"connect {which} failed: {e}"
    _save_calls(ws, ctl)
    return result


def calls(ctl: Any) -> list[dict[str, Any]]:
    """Every call the controller made, as rows (``rows_table`` draws them)."""
    return [{"POST": c.path, "HTTP": c.status, "": c.note} for c in ctl.calls]


def ping(ws: Workspace) -> str:
    from sandbox.net import netns, topology
    n = names(ws)
    try:
        target = topology.first_address(n["c2"])
    except (SandboxError, OSError) as e:
        return f"cannot look into {n['c2']} ({e}): run `sandbox lab reset 8` and start again"
    if target is None:
        return "c2 has no address on eth0 yet: nothing to ping"
    r = netns.ping(n["c1"], target, timeout=1)
    return f"ping c1 → c2 ({target}): " + ("reply" if r.returncode == 0 else "no reply")


# -- checks ---------------------------------------------------------------------------------------------

# Not DriverProcess.log(): the learner's driver may write a broken or partial line, which is
# skipped here (pod/journal.read skips the same way, but sorts a pod's journal by time).
def _log(ws: Workspace) -> list[dict[str, Any]]:
    try:
        text = (ws.path / "driver-state" / "driver.log").read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def checks(ws: Workspace) -> Iterable[Result]:
    # Long on purpose: the lab's table of checks, in the order the learner meets them.
    from sandbox.net import netns
    from sandbox.net.cnm import api
    n = names(ws)
    want = [s for s in api.SEQUENCES["container connect"] if not s.startswith("·")]
    got = ws.answers().get("connect_calls")
    hint = ""
    if not got:
        hint = ("record your prediction: ws.answer('connect_calls', [...]) — which calls, in which "
                "order, for one container connect")
    elif got != want:
        missing = [c for c in want if c not in got]
        extra = [c for c in got if c not in want]
        if missing or extra:
            hint = (f"not quite: {'missing ' + ', '.join(missing) if missing else ''}"
                    f"{'; ' if missing and extra else ''}{'not called ' + ', '.join(extra) if extra else ''}")
        else:
            hint = ("the right calls, in another order: the address comes first (IPAM), and "
                    "external connectivity only once the sandbox is plumbed")
    yield Result(CHECKS[0], not hint, hint)
    script, log = ws.path / "driver.py", _log(ws)
    activated = any(e.get("kind") == "reply" and e.get("path") == "/Plugin.Activate"
                    and e.get("status") == 200 for e in log)
    yield gate(CHECKS[1], script.exists() and activated,
               "write DRIVER, then lab8.install_driver(ws, DRIVER) and lab8.start_driver(ws)"
               if not script.exists() else
               "your driver has not answered yet: run lab8.start_driver(ws) and lab8.controller(ws) "
               f"(its errors are in {ws.path / 'driver-state' / 'driver.stderr'})")
    if not (script.exists() and activated):
        return
    joins = [e for e in log if e.get("kind") == "reply" and e.get("path") == "/NetworkDriver.Join"]
    good = [e for e in joins if e.get("status") == 200 and (e.get("body") or {}).get("InterfaceName")
            and e["body"]["InterfaceName"].get("SrcName") and e["body"]["InterfaceName"].get("DstPrefix")]
    hint = ""
    if not joins:
        hint = "no Join reached your driver yet: connect a container (lab8.connect(ws, ctl, 'c1'))"
    elif not good:
        last = joins[-1]
        hint = (f"your Join answered {last.get('status')} {json.dumps(last.get('body'))[:160]}: it "
                "must return InterfaceName {SrcName: the interface it made, DstPrefix: 'eth'} and "
                "Gateway")
    else:
        gw = good[-1]["body"].get("Gateway", "")
        try:
            ipaddress.ip_address(gw)
        except ValueError:
            hint = (f"Gateway is {gw!r}: a bare IP address (no /24) of the network's gateway")
    yield Result(CHECKS[2], not hint, hint)
    node_ino = netns.ns_inode(netns.path_of(n["node"])) if netns.exists(n["node"]) else None
    others = sorted({e["netns_inode"] for e in log if e.get("kind") == "kernel"} - {node_ino})
    strays = [(c, l["name"]) for c in ("c1", "c2") if netns.exists(n[c])
              for l in netns.snapshot(n[c])["links"] if l["name"] not in ("lo", "eth0")]
    hint = ""
    if strays:
        hint = (f"{strays[0][1]} sits in {n[strays[0][0]]} under the driver's name: your driver moved "
                "it into the sandbox itself — leave it in the driver's netns and just answer its "
                "name; libnetwork moves it (and then finds it, renames it eth0, configures it)")
    elif others:
        hint = (f"your driver changed another netns (net:[{others[0]}]): it must act only in its own "
                "— the container's netns (SandboxKey) is libnetwork's to configure")
    yield Result(CHECKS[3], not hint, hint)
    links = {l["name"]: l for l in netns.snapshot(n["node"])["links"]} if netns.exists(n["node"]) else {}
    bridges = {name for name, l in links.items() if l["kind"] == "bridge"}
    hint = ""
    for c in ("c1", "c2"):
        snap = {l["name"]: l for l in netns.snapshot(n[c])["links"]} if netns.exists(n[c]) else {}
        eth0 = snap.get("eth0")
        if eth0 is None:
            hint = (f"{n[c]} has no eth0: the connect failed — read what lab8.connect printed; a "
                    "Join that moves the interface itself, or names one that does not exist in the "
                    "driver's netns, makes libnetwork roll back")
            break
        v4 = [a for a in eth0["addrs"] if ":" not in a]
        if not v4 or ipaddress.ip_interface(v4[0]) not in ipaddress.ip_network(n["pool"]):
            hint = f"eth0 in {n[c]} has {', '.join(v4) or 'no address'}, not one of {n['pool']}"
            break
        if not eth0["up"]:
            hint = f"eth0 in {n[c]} is DOWN"
            break
        host = next((l for l in links.values() if l["index"] == eth0.get("peer_index")), None)
        if host is None or host.get("master") not in bridges:
            hint = (f"the host end of {n[c]}'s eth0 is not on the network's bridge: "
                    "set master= the bridge in Join")
            break
        if not host["up"]:
            hint = f"the host end {host['name']} is DOWN: set it up in Join"
            break
    yield Result(CHECKS[4], not hint, hint)
    out = ping(ws)
    yield Result(CHECKS[5], out.endswith(": reply"), out)


def reset(ws: Workspace) -> list[str]:
    import shutil

    from sandbox.net import netns
    done = []
    said = _stop_recorded(ws)
    if said:
        done.append(said)
    rec = ws.path / "socket-dir"
    if rec.exists():
        d = Path(rec.read_text())
        if d.name.startswith("sbx-l8-") and d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            done.append(f"removed {d}")
    if not ws.names():
        return done
    n = names(ws)
    for key in ("c1", "c2", "node"):
        if netns.path_of(n[key]).exists():
            netns.delete(n[key], missing_ok=True)
            done.append(f"deleted netns {n[key]}")
    return done


def mistake(ws: Workspace) -> str:
    """On the finished lab: c2's eth0 set down. Returns what the check then says."""
    from sandbox.net import netns
    n = names(ws)
    netns.run(n["c2"], ["ip", "link", "set", "eth0", "down"], check=True)
    return f"eth0 in {n['c2']} is DOWN"
