"""Notebook 06b (seed slides 41–45): CNI beyond one bridge, each step on live namespaces.

* :meth:`CniTour.plugins` — the plugin executables a runtime can find (the kit's and Debian's
  upstream ones, ``/usr/lib/cni``), each asked VERSION: CNI came out of rkt, and the same
  executables serve every runtime (slide 41).
* :meth:`CniTour.topologies` — the same two containers joined by ``bridge``, ``ptp``, ``macvlan``
  and ``ipvlan`` (each in a node of its own; macvlan/ipvlan hang off the node's uplink to a
  "LAN" namespace), compared on what the kernel then holds and who reaches whom (slide 43).
* :meth:`CniTour.two_nodes` — two nodes, each with its own pod subnet, a wire between them, and
  the routes that make a pod on node A reach a pod on node B by its own IP (slide 42).
* :meth:`CniTour.ipam` — one LAN, three IPAM plugins: ``host-local`` (a fixed block on a host),
  ``dhcp`` (Debian's plugin and its daemon, dnsmasq as the LAN's DHCP server) and the SQLite
  IPAM of lab 5, each with the state it keeps (slide 44).
* :meth:`CniTour.two_networks` — one container on two networks, ``eth0`` and ``eth1`` with their
  own routes; DEL of one leaves the other (slide 45).

Every namespace is the notebook's (``state.netns``); this module returns rows and snapshots and
:mod:`sandbox.viz.course` draws them. Traffic only goes between namespaces made here.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError

ROLES = {  # what each plugin type does (CNI's plugins repository: main, ipam, meta)
    "bridge": "interface: veth pair, host end on a Linux bridge",
    "ptp": "interface: veth pair, routed point to point (no bridge)",
    "macvlan": "interface: a MAC-level child of a host interface",
    "ipvlan": "interface: an IP-level child of a host interface (shares its MAC)",
    "host-device": "interface: moves an existing host device into the container",
    "vlan": "interface: an 802.1q child of a host interface",
    "loopback": "interface: sets lo up",
    "host-local": "IPAM: addresses from a fixed block, one file each on this host",
    "dhcp": "IPAM: asks the network's DHCP server (through its daemon)",
    "static": "IPAM: the addresses written in the configuration",
    "bandwidth": "chained: traffic shaping (tc)",
    "firewall": "chained: iptables/firewalld rules",
    "portmap": "chained: host port → container port (DNAT)",
    "tuning": "chained: sysctls and link settings in the container",
    "sbr": "chained: source-based routing",
    "vrf": "chained: puts the interface in a VRF",
}

RKT_DEFAULT_NETWORK = {   # rkt's Documentation/networking/overview.md, "The default network"
    "name": "default", "type": "ptp", "ipMasq": True,
    "ipam": {"type": "host-local", "subnet": "172.16.28.0/24", "routes": [{"dst": "0.0.0.0/0"}]}}


class TourError(SandboxError):
    """A step of the tour could not run."""


@dataclass
class Scenario:
    """One plugin's topology: its node, the LAN (macvlan/ipvlan), containers and results."""

    kind: str
    node: str
    lan: str = ""
    containers: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str = ""
    subnet: str = ""
    node_addr: str = ""          # the node's own address on that network (None for bridge/ptp)
    router: str = ""             # the LAN's router (macvlan/ipvlan)
    ms: float = 0.0


class CniTour:
    """The namespaces, runtimes and daemons of notebook 06b, under the notebook's state."""

    def __init__(self, state: Any = None) -> None:
        from sandbox.net import netns
        from sandbox.net.cni import DEBIAN_CNI_DIR
        from sandbox.net.plugins import plugin_dir
        self.state = state
        if state is not None:
            self.session, self.dir = state.netns, state.path / "tour"
            self.dir.mkdir()
            state.on_close(self.close)
        else:
            self.session = netns.Session()
            self.dir = self.session.tmpdir("sbx-tour-")
        (self.dir / "bin").mkdir()
        self.cni_path = [str(self.dir / "bin"), str(plugin_dir()), DEBIAN_CNI_DIR]
        self.runtimes: dict[str, Any] = {}
        self.scenarios: dict[str, Scenario] = {}
        self.daemons: dict[str, Any] = {}
        self.nodes: dict[str, str] = {}
        self.pods: dict[str, str] = {}
        self.ipam_rows_: list[dict[str, Any]] = []
        self.multi: dict[str, Any] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def _runtime(self, key: str, node: str, conf: dict[str, Any]) -> Any:
        """A runtime for one network configuration, running its plugins in ``node``."""
        from sandbox.net.cni import Runtime
        d = self.dir / key
        (d / "net.d").mkdir(parents=True, exist_ok=True)
        (d / "net.d" / f"10-{conf['name']}.conf").write_text(json.dumps(conf, indent=2))
        rt = Runtime(conf_dir=d / "net.d", cni_path=self.cni_path, cache_dir=self.dir / "cache",
                     node=node, plugin_state_dir=self.dir / "plugin-state")
        self.runtimes[conf["name"]] = rt
        return rt

    def _lan(self, node: str, lan_cidr: str, node_cidr: str | None) -> str:
        """A "LAN" namespace wired to the node: the node's uplink ``sbxup0`` (with the node's own
        address on the LAN, if any) ⇄ ``lan0`` (the LAN's router address)."""
        from sandbox.net import topology
        lan = self.session.create().name
        topology.wire(node, lan, "sbxup0", "lan0", node_cidr, lan_cidr)
        return lan

    def conf_text(self, name: str) -> str:
        """The configuration file a network was defined by."""
        rt = self.runtimes[name]
        return next(rt.conf_dir.glob("*.conf")).read_text()

    # -- slide 41: the plugins ------------------------------------------------------------------
    def plugins(self) -> list[list[str]]:
        """[type, found in, VERSION's supportedVersions, role] for each plugin on CNI_PATH
        (first match wins, as libcni's FindInPath)."""
        from sandbox.net.cni import find_plugin, supported_versions
        names = sorted({p.name for d in self.cni_path[1:] for p in Path(d).iterdir()
                        if p.is_file() and os.access(p, os.X_OK) and not p.name.startswith(".")})
        rows = []
        for name in names:
            path = find_plugin(name, self.cni_path)
            who = "the kit (Python)" if str(path.parent) == self.cni_path[1] else "Debian (upstream Go)"
            try:
                versions = ", ".join(supported_versions(path))
            except SandboxError as e:
                versions = f"(no answer: {e})"
            rows.append([name, who, versions, ROLES.get(name, "")])
        return rows

    @staticmethod
    def default_networks() -> dict[str, Any]:
        """rkt's built-in default network and this kit's, side by side."""
        from sandbox.pod import stage0
        return {"rkt's default (rkt run, no --net)": RKT_DEFAULT_NETWORK,
                "this kit's default (sandbox run, no --net)": stage0.default_network()}

    # -- slide 43: topologies -------------------------------------------------------------------
    KINDS = {
        # kind: (plugin conf, subnet, LAN?)
        "bridge": ({"type": "bridge", "bridge": "sbxtour0", "isGateway": True}, "10.61.0.0/24"),
        "ptp": ({"type": "ptp"}, "10.62.0.0/24"),
        "macvlan": ({"type": "macvlan", "master": "sbxup0", "mode": "bridge"}, "10.63.0.0/24"),
        "ipvlan": ({"type": "ipvlan", "master": "sbxup0", "mode": "l2"}, "10.64.0.0/24"),
    }

    def topologies(self, kinds: tuple[str, ...] = ("bridge", "ptp", "macvlan", "ipvlan")) -> dict[str, Scenario]:
        """Two containers per plugin, each plugin in a node of its own. A plugin the kernel
        cannot serve (ipvlan needs a driver some kernels lack) is recorded as its error."""
        from sandbox.net.cni import CniError
        for kind in kinds:
            plugin, subnet = self.KINDS[kind]
            node = self.session.node().name
            net = subnet.rsplit(".", 1)[0]
            sc = Scenario(kind, node, subnet=subnet)
            ipam: dict[str, Any] = {"type": "host-local", "subnet": subnet,
                                    "routes": [{"dst": "0.0.0.0/0"}]}
            if kind in ("macvlan", "ipvlan"):
                # the node's uplink is the master; the LAN namespace plays the network it is
                # plugged into, with a router at .1; the node itself is .254 on that LAN
                sc.router, sc.node_addr = f"{net}.1", f"{net}.254"
                sc.lan = self._lan(node, f"{sc.router}/24", f"{sc.node_addr}/24")
                ipam.update(rangeStart=f"{net}.10", rangeEnd=f"{net}.50", gateway=sc.router)
            else:
                sc.node_addr = f"{net}.1"          # bridge: on the bridge; ptp: on each host veth
            rt = self._runtime(f"topo-{kind}", node, {"cniVersion": "1.0.0", "name": f"sbx-{kind}",
                                                       **plugin, "ipam": ipam})
            t0 = time.perf_counter()
            for _ in range(2):
                c = self.session.create().name
                sc.containers.append(c)
                try:
                    sc.results[c] = rt.add(f"sbx-{kind}", c)
                except CniError as e:
                    sc.error = str(e)
                    break
            sc.ms = (time.perf_counter() - t0) * 1000
            self.scenarios[kind] = sc
        return self.scenarios

    def topology_rows(self) -> list[list[str]]:
        """What each plugin built, and who reaches whom (one ping each, namespaces made here)."""
        from sandbox.net import netns, topology
        rows = []
        for kind, sc in self.scenarios.items():
            if sc.error:
                rows.append([kind, "—", "—", "—", "—", f"ADD failed: {sc.error}"])
                continue
            c1, c2 = sc.containers
            node = netns.snapshot(sc.node)
            snap1 = netns.snapshot(c1)
            eth0 = next(l for l in snap1["links"] if l["name"] == "eth0")
            master = next((l for l in node["links"] if l["index"] == eth0.get("peer_index")), None)
            same_mac = master is not None and master.get("mac") == eth0.get("mac")
            iface = f"eth0: {eth0['kind']}" + (
                f", child of the node's {master['name']}" if eth0["kind"] in ("macvlan", "ipvlan") and master else "")
            iface += " (the master's MAC)" if same_mac else " (a MAC of its own)"
            made = [f"{l['name']} ({l['kind']})" for l in node["links"]
                    if l["kind"] in ("bridge", "veth") and l["name"] != "sbxup0"]
            node_side = ", ".join(made) or "nothing new (the children hang off sbxup0)"
            ip2 = topology.first_address(c2)
            pings = [self._ping(c1, ip2, "c1 → c2")]
            pings.append(self._ping(c1, sc.node_addr, "c1 → its node"))
            if sc.router:
                pings.append(self._ping(c1, sc.router, "c1 → the LAN's router"))
            rows.append([kind, iface, node_side, "; ".join(topology.route_lines(c1)),
                         "; ".join(topology.route_lines(sc.node)) or "(none)", "\n".join(pings)])
        return rows

    @staticmethod
    def _ping(src: str, dst: str | None, label: str) -> str:
        from sandbox.net import netns
        if not dst:
            return f"{label}: no address"
        r = netns.ping(src, dst, timeout=1)
        ttl = next((w.split("=")[1] for line in r.stdout.splitlines() for w in line.split()
                    if w.startswith("ttl=")), None)
        return f"{label} ({dst}): " + (f"reply, ttl={ttl}" if r.returncode == 0 else "no reply")

    def snapshots(self, section: str) -> tuple[str, dict[str, Any], dict[str, dict[str, Any]], dict[str, str]]:
        """For a picture of one section (a plugin's name, ``ipam`` or ``multi``): (node name, node
        snapshot, {namespace: snapshot} in drawing order, {namespace: its role}) — a LAN
        namespace's role is "LAN", a container's "" (the pictures name them)."""
        from sandbox.net import netns
        if section in self.scenarios:
            sc = self.scenarios[section]
            node, lan, conts = sc.node, sc.lan, list(sc.containers)
        elif section == "ipam":
            node, lan = self.nodes["ipam"], self.nodes["ipam-lan"]
            conts = [r["container"] for r in self.ipam_rows_]
        elif section == "multi":
            node, lan = self.nodes["multi"], ""
            conts = [self.multi["container"], *self.multi["peers"].values()]
        else:
            raise TourError(f"No picture for {section!r}.")
        roles = {lan: "LAN"} if lan else {}
        spaces = {c: netns.snapshot(c) for c in ([lan] if lan else []) + conts if netns.exists(c)}
        return node, netns.snapshot(node), spaces, roles

    def node_snapshots(self) -> dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]]:
        """Both nodes of section 3, each with its pod: {"A <node>": (snapshot, {pod: snapshot})}."""
        from sandbox.net import netns
        return {f"{s} {self.nodes[s]}": (netns.snapshot(self.nodes[s]),
                                         {self.pods[s]: netns.snapshot(self.pods[s])})
                for s in ("A", "B")}

    # -- slide 42: two nodes --------------------------------------------------------------------
    def two_nodes(self) -> dict[str, str]:
        """Nodes A and B (a wire 10.65.255.0/30 between them), each with a bridge network on its
        own pod subnet (10.65.1.0/24, 10.65.2.0/24) and one pod."""
        from sandbox.net import topology
        for side, n in (("A", 1), ("B", 2)):
            self.nodes[side] = self.session.node().name
        topology.wire(self.nodes["A"], self.nodes["B"], "sbxwire0", "sbxwire0",
                      "10.65.255.1/30", "10.65.255.2/30")
        for side, n in (("A", 1), ("B", 2)):
            rt = self._runtime(f"node-{side}", self.nodes[side], {
                "cniVersion": "1.0.0", "name": f"sbx-pods-{side.lower()}", "type": "bridge",
                "bridge": "sbxpods0", "isGateway": True,
                "ipam": {"type": "host-local", "subnet": f"10.65.{n}.0/24",
                         "routes": [{"dst": "0.0.0.0/0"}]}})
            pod = self.session.create().name
            rt.add(f"sbx-pods-{side.lower()}", pod)
            self.pods[side] = pod
        return {**{f"node {k}": v for k, v in self.nodes.items()},
                **{f"pod on {k}": v for k, v in self.pods.items()}}

    def node_rows(self) -> list[list[str]]:
        """[what, namespace, address, routes] for both nodes and both pods."""
        from sandbox.net import topology
        rows = []
        for side in ("A", "B"):
            rows.append([f"node {side}", self.nodes[side],
                         topology.first_address(self.nodes[side], "sbxwire0") or "",
                         "\n".join(topology.route_lines(self.nodes[side]))])
            rows.append([f"pod on {side}", self.pods[side], topology.first_address(self.pods[side]) or "",
                         "\n".join(topology.route_lines(self.pods[side]))])
        return rows

    def cross_ping(self) -> str:
        """Pod on A → pod on B, by B's pod address."""
        from sandbox.net import topology
        return self._ping(self.pods["A"], topology.first_address(self.pods["B"]), "pod A → pod B")

    def route_nodes(self) -> list[str]:
        """Each node learns where the other's pod subnet is: via the other node's wire address."""
        from sandbox.net import topology
        topology.route(self.nodes["A"], "10.65.2.0/24", "10.65.255.2")
        topology.route(self.nodes["B"], "10.65.1.0/24", "10.65.255.1")
        return ["node A: 10.65.2.0/24 via 10.65.255.2 (node B)",
                "node B: 10.65.1.0/24 via 10.65.255.1 (node A)"]

    def source_seen(self) -> list[str]:
        """What a server in pod B sees as the sender when pod A talks to it."""
        from sandbox.net import topology
        a, b = (topology.first_address(self.pods[s]) for s in ("A", "B"))
        seen = topology.source_seen(self.pods["B"], self.pods["A"], b or "")
        wire_a = topology.first_address(self.nodes["A"], "sbxwire0")
        return [f"pod A's address: {a}", f"node A's address on the wire: {wire_a}",
                f"the sender pod B's server saw: {seen}"]

    # -- slide 44: IPAM ---------------------------------------------------------------------------
    def _sqlite_ipam(self) -> tuple[Path, str]:
        """The SQLite IPAM plugin: the learner's own from lab 5 if it is installed, else the lab's
        reference solution. (path, where it came from)."""
        from sandbox.course.labs import Workspace, lab5
        mine = Workspace(5, create=False).path / "bin" / lab5.LAB5_PLUGIN
        target = self.dir / "bin" / lab5.LAB5_PLUGIN
        if mine.is_file() and os.access(mine, os.X_OK):
            shutil.copy2(mine, target)
            return target, f"yours, from lab 5 ({mine})"
        src = lab5.reference_plugin()
        target.write_text(f"#!{sys.executable}\n{src}")
        target.chmod(0o755)
        return target, "lab 5's reference solution (do the lab to use your own)"

    def ipam(self) -> list[dict[str, Any]]:
        """One node, its uplink to a LAN (router and DHCP server at 10.66.0.1), and three
        macvlan networks on that uplink, each with another IPAM plugin; one container each."""
        from sandbox.net import topology
        node = self.session.node().name
        self.nodes["ipam"] = node
        lan = self._lan(node, "10.66.0.1/24", None)
        self.nodes["ipam-lan"] = lan
        d = self.dir / "ipam"
        d.mkdir()
        self.daemons["dnsmasq"] = topology.Daemon([
            shutil.which("dnsmasq", path="/usr/sbin:/sbin:" + os.environ.get("PATH", "")) or "dnsmasq",
            "--no-daemon", "--conf-file=/dev/null", "--interface=lan0", "--bind-interfaces",
            "--port=0", "--dhcp-range=10.66.0.10,10.66.0.50,255.255.255.0,1h",
            "--dhcp-option=option:router,10.66.0.1", f"--dhcp-leasefile={d / 'dnsmasq.leases'}",
            "--user=root", "--log-dhcp", f"--log-facility={d / 'dnsmasq.log'}"],
            lan, d / "dnsmasq.out")
        sock_dir = Path(self.session.tmpdir("sbx-dhcp-", base=tempfile.gettempdir()))
        sock = sock_dir / "dhcp.sock"
        self.daemons["dhcp"] = topology.Daemon(
            [str(Path(self.cni_path[2]) / "dhcp"), "daemon", "-socketpath", str(sock)], node,
            d / "dhcp-daemon.log")
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            if not self.daemons["dhcp"].alive():
                raise TourError("The CNI dhcp daemon exited: " + self.daemons["dhcp"].output()[-200:])
            time.sleep(0.02)
        plugin, origin = self._sqlite_ipam()
        base = {"cniVersion": "1.0.0", "type": "macvlan", "master": "sbxup0", "mode": "bridge"}
        ipams = [
            ("host-local", "a fixed block on a host", {"type": "host-local", "subnet": "10.66.0.0/24",
                                                       "rangeStart": "10.66.0.100", "rangeEnd": "10.66.0.110",
                                                       "gateway": "10.66.0.1",
                                                       "routes": [{"dst": "0.0.0.0/0"}]}),
            ("dhcp", "DHCP", {"type": "dhcp", "daemonSocketPath": str(sock)}),
            ("sqlite-ipam", "an IPAM system backed by an SQL database",
             {"type": "sqlite-ipam", "subnet": "10.66.0.0/24", "dbPath": str(d / "ipam.sqlite")}),
        ]
        self.ipam_rows_ = []
        for typ, slide, ipam_conf in ipams:
            name = f"sbx-ipam-{typ.split('-')[0]}"
            rt = self._runtime(f"ipam-{typ}", node, {**base, "name": name, "ipam": ipam_conf})
            c = self.session.create().name
            t0 = time.perf_counter()
            res = rt.add(name, c)
            self.ipam_rows_.append({"ipam": typ, "slide": slide, "network": name, "container": c,
                                    "address": ", ".join(ip["address"] for ip in res.get("ips", [])),
                                    "ms": (time.perf_counter() - t0) * 1000,
                                    "origin": origin if typ == "sqlite-ipam" else ""})
        return self.ipam_rows_

    def ipam_state(self) -> list[list[str]]:
        """[IPAM, where its state lives, what it holds now] for the three."""
        d = self.dir / "ipam"
        hl = self.dir / "plugin-state" / "networks" / "sbx-ipam-host"
        files = sorted(hl.iterdir()) if hl.is_dir() else []
        host_local = "\n".join(f"{p.name}: {p.read_bytes()!r}" for p in files) or "(no files)"
        leases = (d / "dnsmasq.leases").read_text().strip() if (d / "dnsmasq.leases").exists() else ""
        rows = []
        db = d / "ipam.sqlite"
        if db.exists():
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            try:
                tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
                rows = [f"{t}: {r}" for t in tables for r in con.execute(f'SELECT * FROM "{t}"')]
            finally:
                con.close()
        return [
            ["host-local", f"one file per address in {hl} (the node's /var/lib/cni/networks)",
             host_local],
            ["dhcp", "the LAN's DHCP server (dnsmasq's lease file); the dhcp daemon on the node "
                     "keeps renewing the lease in its memory", leases or "(no lease)"],
            ["sqlite-ipam", f"a table in {db.name}", "\n".join(rows) or "(no rows)"],
        ]

    def dhcp_log(self, lines: int = 12) -> str:
        """The DHCP exchange as the server logged it, and what the node's dhcp daemon said."""
        d = self.dir / "ipam"
        server = [l.split("]: ", 1)[-1] for l in (d / "dnsmasq.log").read_text(errors="replace").splitlines()
                  if any(k in l for k in ("DHCPDISCOVER", "DHCPOFFER", "DHCPREQUEST", "DHCPACK",
                                          "DHCPRELEASE"))] if (d / "dnsmasq.log").exists() else []
        daemon = [l.split(" ", 2)[-1] for l in self.daemons["dhcp"].output().splitlines()][-lines:]
        return ("dnsmasq (the LAN's DHCP server):\n  " + "\n  ".join(server[-lines:]) +
                "\n\nthe CNI dhcp daemon (on the node):\n  " + "\n  ".join(daemon))

    def ipam_release(self) -> None:
        """DEL the three containers: each IPAM plugin gives its address back its own way."""
        for row in self.ipam_rows_:
            self.runtimes[row["network"]].delete(row["network"], row["container"])
        time.sleep(0.2)   # dnsmasq writes its lease file after the DHCPRELEASE

    # -- slide 45: several networks ---------------------------------------------------------------
    def two_networks(self) -> dict[str, str]:
        """A container on "front" (eth0, the default route) and on "back" (eth1, only its own
        subnet and 10.68.0.0/16 through back's gateway); a peer container on each network."""
        node = self.session.node().name
        self.nodes["multi"] = node
        nets = {
            "sbx-front": {"bridge": "sbxfront0", "ipam": {"type": "host-local", "subnet": "10.67.1.0/24",
                                                         "routes": [{"dst": "0.0.0.0/0"}]}},
            "sbx-back": {"bridge": "sbxback0", "ipam": {"type": "host-local", "subnet": "10.67.2.0/24",
                                                       "routes": [{"dst": "10.68.0.0/16"}]}},
        }
        for name, extra in nets.items():
            self._runtime(f"multi-{name}", node, {"cniVersion": "1.0.0", "name": name,
                                                  "type": "bridge", "isGateway": True, **extra})
        c = self.session.create().name
        peers = {name: self.session.create().name for name in nets}
        for name, peer in peers.items():
            self.runtimes[name].add(name, peer)
        self.runtimes["sbx-front"].add("sbx-front", c, ifname="eth0")
        self.runtimes["sbx-back"].add("sbx-back", c, ifname="eth1")
        self.multi = {"container": c, "peers": peers}
        return {"container": c, **{f"peer on {k}": v for k, v in peers.items()}}

    def multi_rows(self) -> list[list[str]]:
        """The container's interfaces, its routes, its cached attachments, and one ping to
        each peer."""
        from sandbox.net import netns, topology
        c = self.multi["container"]
        snap = netns.snapshot(c)
        ifaces = [f"{l['name']}: {', '.join(a for a in l['addrs'] if ':' not in a) or 'no address'}"
                  for l in snap["links"] if l["name"] != "lo"]
        atts = [f"{a.network} as {a.ifname}" for rt in {id(r): r for r in self.runtimes.values()}.values()
                for a in rt.attachments(container_id=c)]
        atts = sorted(set(atts))
        pings = [self._ping(c, topology.first_address(peer), f"→ peer on {net}")
                 for net, peer in self.multi["peers"].items()]
        return [["interfaces", "\n".join(ifaces)], ["routes", "\n".join(topology.route_lines(c))],
                ["cached attachments", "\n".join(atts) or "(none)"], ["pings", "\n".join(pings)]]

    def leave_back(self) -> None:
        """DEL the container from "back" only (its eth1)."""
        self.runtimes["sbx-back"].delete("sbx-back", self.multi["container"], ifname="eth1")

    # -- the end ----------------------------------------------------------------------------------
    def close(self) -> list[str]:
        """Stop the daemons (by PID); the namespaces and files go with the notebook's state."""
        done = []
        for name, d in list(self.daemons.items()):
            if d.alive():
                d.stop()
                done.append(f"stopped {name} (pid {d.pid})")
        if self.state is None:
            done += self.session.close()
        return done
