"""Notebook 09 (seed slides 52–59): the same container connected twice in one node netns —
once the CNI way (the kit's runtime execs a ``bridge`` plugin), once the CNM way (the kit's mini
libnetwork, :mod:`sandbox.net.cnm.controller`, calls a remote driver process over its unix
socket, :mod:`sandbox.net.cnm.driver`) — so the two call sequences, the two topologies and the
answer to "who configured the container's netns" can be read off live state side by side.

This module returns rows; :mod:`sandbox.viz.course` draws them.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CNI_COMMANDS = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"]   # SPEC.md §2 (1.1.0)

CNM_TERMS = {
    "network": "a logical network (think vlan)",
    "endpoint": "connects a sandbox to a network",
    "sandbox": "a container-level network configuration for DNS, routes, etc.",
}

# The phases of one container's life on a network, in order.
PHASES = ["set up the plugin", "create the network", "connect a container",
          "disconnect it", "remove the network"]


@dataclass
class CniCnmDemo:
    """One node netns (plays the host) holding a CNI network and a CNM network.

    ``state`` is the notebook's :class:`sandbox.course.notebook.NotebookState` (its namespaces
    and files go there); without one the demo makes its own session and scratch dir."""

    state: Any = None
    subnet: str = "10.88.0.0/24"                 # the CNI network's
    pool: str = "10.89.0.0/24"                   # the CNM network's (asked of its IPAM driver)
    network: str = "sbx-cnm-demo"
    bridge: str = "sbxcni0"
    session: Any = None
    node: str = ""
    names: list[str] = field(default_factory=list)                # CNI containers
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    runtimes: dict[str, Any] = field(default_factory=dict)
    attached_with: dict[str, str] = field(default_factory=dict)
    cnm_names: list[str] = field(default_factory=list)            # CNM containers (sandboxes)
    endpoints: dict[str, Any] = field(default_factory=dict)      # sandbox name -> Endpoint
    marks: list[tuple[str, int, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from sandbox.net import netns
        from sandbox.net.cni import DEBIAN_CNI_DIR, Runtime
        from sandbox.net.plugins import plugin_dir
        if self.state is not None:
            self.session, self.dir = self.state.netns, self.state.path / "cnm-demo"
            self.dir.mkdir()
            self.state.on_close(self.close)   # the driver stops with the notebook, whatever failed
        else:
            self.session = netns.Session()
            self.dir = self.session.tmpdir("sbx-cnm-")
        self.node = self.session.node().name
        (self.dir / "net.d").mkdir()
        self.conf = {"cniVersion": "1.0.0", "name": self.network, "type": "bridge",
                     "bridge": self.bridge, "isGateway": True, "ipMasq": True,
                     "ipam": {"type": "host-local", "subnet": self.subnet,
                              "routes": [{"dst": "0.0.0.0/0"}]}}
        for which, path in (("kit", str(plugin_dir())), ("upstream", DEBIAN_CNI_DIR)):
            self.runtimes[which] = Runtime(conf_dir=self.dir / "net.d", cni_path=path,
                                           cache_dir=self.dir / "cni-cache", node=self.node,
                                           plugin_state_dir=self.dir / "plugin-state")
        self.runtimes["upstream"].calls = self.runtimes["kit"].calls   # one log, in exec order
        self.driver: Any = None
        self.ctl: Any = None
        self.net: Any = None

    @property
    def runtime(self) -> Any:
        return self.runtimes["kit"]

    def _mark(self, phase: str) -> None:
        calls = len(self.runtime.calls)
        self.marks.append((phase, calls, len(self.ctl.calls) if self.ctl else 0,
                           len(self.ctl.ops) if self.ctl else 0))

    # -- set up: a CNI configuration file; a CNM driver process and a network --------------------
    def start_plugin(self) -> dict[str, Any]:
        """Start the remote driver (a long-running process in the node) and activate it."""
        from sandbox.net.cnm.controller import Controller
        from sandbox.net.cnm.driver import spawn
        self._mark("set up the plugin")
        # the socket in a short directory of its own (a unix socket path has 107 bytes at most);
        # the driver's state.json and driver.log in the notebook's directory
        sock_dir = self.session.tmpdir("sbx-cnm-", base=tempfile.gettempdir())
        self.driver = spawn(sock_dir / "plugin.sock", self.node, state_dir=self.dir / "cnm")
        self.ctl = Controller(self.driver.socket, self.node)
        return self.ctl.activate()

    def create_networks(self) -> Path:
        """CNI: write the configuration file (nothing runs). CNM: IPAM pool + gateway, CreateNetwork."""
        self._mark("create the network")
        conf = self.dir / "net.d" / "10-cnm-demo.conf"
        conf.write_text(json.dumps(self.conf, indent=2))
        self.net = self.ctl.create_network("sbx-cnm-net", pool=self.pool)
        return conf

    # -- connect -------------------------------------------------------------------------------
    def attach(self, which: str = "kit") -> str:
        """A new container netns, ADDed with the ``kit``'s or ``upstream``'s bridge plugin."""
        if not self.marks or self.marks[-1][0] != "connect a container":
            self._mark("connect a container")
        name = self.session.create().name
        self.results[name] = self.runtimes[which].add(self.network, name)
        self.names.append(name)
        self.attached_with[name] = which
        return name

    def connect(self) -> str:
        """A new container netns, connected through the CNM controller and driver."""
        if not self.marks or self.marks[-1][0] != "connect a container":
            self._mark("connect a container")
        name = self.session.create().name
        self.endpoints[name] = self.ctl.connect(self.net, name)
        self.cnm_names.append(name)
        return name

    def connect_both(self) -> str:
        """One container, connected both ways: CNI's ADD gives it ``eth0`` (the kit's bridge
        plugin), CNM's connect ``eth1`` (libnetwork's prefix ``eth`` and the next free index)."""
        self._mark("connect a container")
        name = self.session.create().name
        self.results[name] = self.runtime.add(self.network, name)
        self.names.append(name)
        self.attached_with[name] = "kit"
        self.endpoints[name] = self.ctl.connect(self.net, name)
        self.cnm_names.append(name)
        return name

    # -- disconnect / remove ---------------------------------------------------------------------
    def disconnect_one(self) -> tuple[str, str]:
        """DEL the first CNI container; disconnect the first CNM one (their netns stay)."""
        self._mark("disconnect it")
        a, b = self.names[0], self.cnm_names[0]
        self.runtimes[self.attached_with[a]].delete(self.network, a)
        self.names.remove(a)
        self.ctl.disconnect(self.endpoints.pop(b))
        self.cnm_names.remove(b)
        return a, b

    def remove_networks(self) -> None:
        """CNM: the rest disconnected, then network rm. CNI: DEL the rest; the file is deleted."""
        for name in list(self.names):
            self.runtimes[self.attached_with[name]].delete(self.network, name)
            self.names.remove(name)
        for name in list(self.cnm_names):
            self.ctl.disconnect(self.endpoints.pop(name))
            self.cnm_names.remove(name)
        self._mark("remove the network")
        (self.dir / "net.d" / "10-cnm-demo.conf").unlink(missing_ok=True)
        if self.net is not None:
            self.ctl.delete_network(self.net)
            self.net = None
        self._mark("end")

    # -- what happened, as rows ------------------------------------------------------------------
    def _cni_calls(self) -> list[Any]:
        return list(self.runtime.calls)    # both runtimes append to this one list

    def sequence_rows(self) -> list[list[str]]:
        """[phase, what CNI did, what CNM did], from the runtime's exec log and the controller's
        call log, phase by phase. Delegated IPAM (bridge execs host-local itself) is not seen by
        the runtime; it is named from the configuration."""
        ordered = self._cni_calls()
        marks = list(self.marks)
        if self.ctl is not None and marks and marks[-1][0] != "end":
            marks.append(("end", len(ordered), len(self.ctl.calls), len(self.ctl.ops)))
        rows = []
        for (phase, c0, m0, o0), (_, c1, m1, o1) in zip(marks, marks[1:]):
            cni = [f"exec {c.plugin} {c.command} (CNI_NETNS={c.env.get('CNI_NETNS') or '—'}) "
                   f"→ exit {c.exit_code}" + (f"; it execs {self.conf['ipam']['type']} "
                                              f"{c.command} itself" if c.command in ("ADD", "DEL") else "")
                   for c in ordered[c0:c1]]
            if not cni:
                cni = [{"set up the plugin": "nothing: a plugin is an executable, found in CNI_PATH "
                                             "when a call needs it",
                        "create the network": "write a JSON file in the configuration directory "
                                              "(no process runs)",
                        "remove the network": "delete the file (the bridge stays: no plugin call "
                                              "owns it)"}.get(phase, "—")]
            cnm: list[str] = []
            calls = self.ctl.calls if self.ctl else []
            ops = self.ctl.ops[o0:o1] if self.ctl else []
            for i in range(m0, m1 + 1):
                # the controller's own work, where it happened: after Join (connect), after
                # Leave (disconnect)
                mine = [o.what for o in ops if o.after == i]
                if mine:
                    cnm.append("· controller: " + "; ".join(mine))
                if i < m1:
                    c = calls[i]
                    cnm.append(f"POST {c.path} → {c.status}" + (f" ({c.note})" if c.note else ""))
            rows.append([phase, "\n".join(cni), "\n".join(cnm) or "—"])
        return rows

    def who_configured_rows(self) -> list[list[str]]:
        """Slide 56: who changed the container's netns, and who only the node's."""
        from sandbox.net import netns
        node_ino = netns.ns_inode(netns.path_of(self.node))
        rows = []
        for c in self._cni_calls():
            if c.command == "ADD":
                rows.append(["CNI", f"{c.plugin} plugin process (exec'd, exited {c.exit_code})",
                             f"node net:[{node_ino}] (the bridge, its veth end, NAT) and the "
                             f"container's {c.env['CNI_NETNS']} (it made eth0 there itself: "
                             "address, routes)"])
        kernel = [e for e in (self.driver.log() if self.driver else []) if e["kind"] == "kernel"]
        inodes = sorted({e["netns_inode"] for e in kernel})
        rows.append(["CNM", f"remote driver process {self.driver.pid if self.driver else '?'} "
                            f"({len(kernel)} kernel changes)",
                     ", ".join(f"net:[{i}]" + (" = the node" if i == node_ino else " (?)")
                               for i in inodes) + " only — it was told each SandboxKey, never "
                                                  "opened one"])
        sand = sorted({(o.netns, o.netns_inode) for o in (self.ctl.ops if self.ctl else [])})
        rows.append(["CNM", f"the controller (libnetwork's part, in this kernel process "
                            f"{os.getpid()}; {len(self.ctl.ops) if self.ctl else 0} changes)",
                     ", ".join(f"{Path(p).name} net:[{i}]" for p, i in sand) +
                     ": moved the driver's interface in, named it, MAC, address, routes"])
        return rows

    def rows(self) -> list[dict[str, str]]:
        """CNM's three objects, read off the live kernel state of both networks."""
        from sandbox.net import netns
        node = netns.snapshot(self.node)
        links = {l["name"]: l for l in node["links"]}

        def v4(addrs: list[str]) -> str:
            return ", ".join(a for a in addrs if ":" not in a) or "no address"

        out = []
        br = links.get(self.bridge, {})
        out.append({"cnm": "Network", "model": "CNI", "meaning": CNM_TERMS["network"],
                    "api": f"configuration {self.network!r} (type bridge, ipam host-local)",
                    "kernel": f"bridge {self.bridge} in node {self.node} ({v4(br.get('addrs', []))})"})
        if self.net is not None:
            nb = next((l for l in node["links"] if l.get("kind") == "bridge"
                       and l["name"] != self.bridge), {})
            out.append({"cnm": "Network", "model": "CNM", "meaning": CNM_TERMS["network"],
                        "api": f"NetworkID {self.net.id[:12]}… (pool {self.net.pool} from IPAM)",
                        "kernel": f"bridge {nb.get('name', '?')} in node {self.node} "
                                  f"({v4(nb.get('addrs', []))})"})
        for model, names in (("CNI", self.names), ("CNM", self.cnm_names)):
            for name in names:
                snap = netns.snapshot(name)
                ifname = self.ifname(name, model)
                eth0 = next((l for l in snap["links"] if l["name"] == ifname), {})
                host_end = next((l for l in node["links"] if l.get("kind") == "veth"
                                 and l["index"] == eth0.get("peer_index")), {})
                if model == "CNI":
                    ips = [ip["address"] for ip in self.results[name].get("ips", [])]
                    api = f"the cached ADD result for ({name}, {ifname}): {', '.join(ips)}"
                    sbx = f"CNI_NETNS={netns.path_of(name)}"
                else:
                    ep = self.endpoints[name]
                    api = f"EndpointID {ep.id[:12]}… ({ep.address}, MAC {ep.mac})"
                    sbx = f"SandboxKey {ep.sandbox}"
                out.append({"cnm": "Endpoint", "model": model, "meaning": CNM_TERMS["endpoint"],
                            "api": api,
                            "kernel": f"veth {host_end.get('name', '?')} (on {host_end.get('master')}) "
                                      f"⇄ {ifname} in {name} ({v4(eth0.get('addrs', []))})"})
                routes = [r["dst"] + (f" via {r['gateway']}" if r.get("gateway") else "")
                          for r in snap["routes"] if r["family"] == 4]
                out.append({"cnm": "Sandbox", "model": model, "meaning": CNM_TERMS["sandbox"],
                            "api": sbx,
                            "kernel": f"netns net:[{snap['inode']}], routes {'; '.join(routes)}"})
        return out

    def pings(self) -> list[list[str]]:
        """One ping each: a CNI container to another one's CNI address, a CNM container to
        another's CNM address, and the last CNI container to the last CNM one (through the node,
        which routes between its two bridges). Only addresses in this demo's netns."""
        from sandbox.net import netns
        pairs = []
        if len(self.names) > 1:
            pairs.append(("CNI → CNI", self.names[1], self.names[0], "CNI"))
        if len(self.cnm_names) > 1:
            pairs.append(("CNM → CNM", self.cnm_names[1], self.cnm_names[0], "CNM"))
        if self.names and self.cnm_names and self.names[-1] != self.cnm_names[-1]:
            pairs.append(("CNI → CNM (routed by the node)", self.names[-1], self.cnm_names[-1], "CNM"))
        rows = []
        for label, a, b, model in pairs:
            ip = self.address(b, model)
            r = netns.ping(a, ip, timeout=1)
            rows.append([label, f"{a} → {b} ({ip})", "reply" if r.returncode == 0 else "no reply"])
        return rows

    def ifname(self, name: str, model: str) -> str:
        """The interface a container got from one model (CNI: eth0; CNM: what libnetwork named)."""
        return "eth0" if model == "CNI" else self.endpoints[name].ifname

    def address(self, name: str, model: str) -> str:
        """The container's address on one model's network (no prefix)."""
        if model == "CNI":
            return self.results[name]["ips"][0]["address"].split("/")[0]
        return self.endpoints[name].address.split("/")[0]

    def api_rows(self) -> list[list[str]]:
        """Every endpoint of the remote driver protocol, and whether this session called it."""
        from sandbox.net.cnm import api
        called = {c.path: c.status for c in (self.ctl.calls if self.ctl else [])}
        rows = []
        for e in api.ENDPOINTS:
            seen = called.get(e.path)
            rows.append([e.interface, e.method, e.when, "optional (404 = fine)" if e.optional else "required",
                         f"yes (HTTP {seen})" if seen else "no"])
        return rows

    def cni_command_rows(self) -> list[list[str]]:
        """The CNI commands, and how many times this session exec'd each."""
        counts: dict[str, int] = {}
        for c in self._cni_calls():
            counts[c.command] = counts.get(c.command, 0) + 1
        return [[cmd, str(counts.get(cmd, 0))] for cmd in CNI_COMMANDS]

    def conclusion_rows(self) -> list[list[Any]]:
        """Slide 59's claims, measured in this session."""
        calls = self._cni_calls()
        paths = {c.path for c in calls}
        alive = 0
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    argv = (proc / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                alive += any(a.decode(errors="replace") in paths for a in argv[:2])
        drv_alive = self.driver is not None and self.driver.proc.poll() is None
        return [
            ["CNI: plugin processes the runtime started / still running", f"{len(calls)} / {alive}"],
            ["CNI: plugin implementations used for one configuration",
             ", ".join(sorted({f"{w} bridge" for w in self.attached_with.values()} | {"kit bridge"}))],
            ["CNM: driver processes / still running",
             f"1 / {1 if drv_alive else 0} (pid {self.driver.pid if self.driver else '?'}, "
             f"socket {self.driver.socket if self.driver else '?'})"],
            ["CNM: HTTP calls to the driver", len(self.ctl.calls) if self.ctl else 0],
            ["CNM: kernel changes the controller made in sandboxes",
             len(self.ctl.ops) if self.ctl else 0],
            ["total plugin exec time (ms) / driver call time (ms)",
             f"{sum(c.ms for c in calls):.0f} / "
             f"{sum(c.ms for c in self.ctl.calls) if self.ctl else 0:.0f}"],
        ]

    # -- clean up ----------------------------------------------------------------------------------
    def close(self) -> list[str]:
        """DEL what is attached, disconnect and remove the CNM network, stop the driver
        (idempotent)."""
        done = []
        for name in list(self.names):
            try:
                self.runtimes[self.attached_with[name]].delete(self.network, name)
                done.append(f"DEL {name}")
            except Exception as e:  # noqa: BLE001 - the node netns goes anyway
                done.append(f"DEL {name}: {e}")
        self.names.clear()
        if self.ctl is not None and self.driver is not None and self.driver.proc.poll() is None:
            done += self.ctl.close()
        if self.driver is not None and self.driver.proc.poll() is None:
            self.driver.stop()
            done.append(f"stopped the CNM driver (pid {self.driver.pid})")
        if self.state is None:
            done += self.session.close()
        return done

    def __enter__(self) -> "CniCnmDemo":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
