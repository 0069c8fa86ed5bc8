"""Notebook 09 (seed slides 52–59): a node netns and containers attached to one CNI network by the
kit's runtime, so CNM's *network*, *endpoint* and *sandbox* can be read off live kernel state.
The pictures and tables of it are drawn by :mod:`sandbox.viz.course`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CNI_COMMANDS = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"]


# libnetwork's remote driver protocol (docs/remote.md): JSON over HTTP to a long-running plugin
CNM_REMOTE_ENDPOINTS = [
    "/Plugin.Activate", "/NetworkDriver.GetCapabilities", "/NetworkDriver.CreateNetwork",
    "/NetworkDriver.DeleteNetwork", "/NetworkDriver.CreateEndpoint",
    "/NetworkDriver.EndpointOperInfo", "/NetworkDriver.DeleteEndpoint", "/NetworkDriver.Join",
    "/NetworkDriver.Leave", "/NetworkDriver.DiscoverNew", "/NetworkDriver.DiscoverDelete"]


CNM_TERMS = {
    "network": "a logical network (think vlan)",
    "endpoint": "connects a sandbox to a network",
    "sandbox": "a container-level network configuration for DNS, routes, etc.",
}


@dataclass
class CniCnmDemo:
    """A node netns (plays the host) and containers attached to one CNI network by the kit's
    runtime, so notebook 09 can point at CNM's three objects in real kernel state."""

    subnet: str = "10.88.0.0/24"
    containers: int = 2
    session: Any = None
    node: str = ""
    names: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    runtimes: dict[str, Any] = field(default_factory=dict)
    attached_with: dict[str, str] = field(default_factory=dict)
    network: str = "sbx-cnm-demo"
    bridge: str = "sbxcnm0"

    def __post_init__(self) -> None:
        from sandbox.net import netns
        from sandbox.net.cni import DEBIAN_CNI_DIR, Runtime
        from sandbox.net.plugins import plugin_dir
        self.session = netns.Session()
        self.node = self.session.node().name
        self.tmp = self.session.tmpdir("sbx-cnm-")
        (self.tmp / "net.d").mkdir()
        self.conf = {"cniVersion": "1.0.0", "name": self.network, "type": "bridge",
                     "bridge": self.bridge, "isGateway": True,
                     "ipam": {"type": "host-local", "subnet": self.subnet}}
        (self.tmp / "net.d" / "10-cnm-demo.conf").write_text(json.dumps(self.conf, indent=2))
        for which, path in (("kit", str(plugin_dir())), ("upstream", DEBIAN_CNI_DIR)):
            self.runtimes[which] = Runtime(conf_dir=self.tmp / "net.d", cni_path=path,
                                           cache_dir=self.tmp / "cache", node=self.node,
                                           plugin_state_dir=self.tmp / "plugin-state")

    @property
    def runtime(self):
        return self.runtimes["kit"]

    def attach(self, which: str = "kit") -> str:
        """Make one more container netns and ADD it with the ``kit``'s or ``upstream``'s
        bridge plugin (same configuration). Returns its name."""
        name = self.session.create().name
        self.results[name] = self.runtimes[which].add(self.network, name)
        self.names.append(name)
        self.attached_with[name] = which
        return name

    def attach_all(self) -> list[str]:
        return [self.attach() for _ in range(self.containers)]

    # -- the mapping, computed from live state
    def rows(self) -> list[dict[str, str]]:
        from sandbox.net import netns
        node = netns.snapshot(self.node)
        links = {l["name"]: l for l in node["links"]}
        br = links.get(self.bridge, {})
        rows = [{"cnm": "Network", "meaning": CNM_TERMS["network"],
                 "cni": f"network configuration {self.network!r} (type {self.conf['type']}, "
                        f"ipam {self.conf['ipam']['type']})",
                 "kernel": f"bridge {self.bridge} in node netns {self.node} "
                           f"({', '.join(a for a in br.get('addrs', []) if ':' not in a) or 'no address'})"}]
        for name in self.names:
            snap = netns.snapshot(name)
            eth0 = next((l for l in snap["links"] if l["name"] == "eth0"), {})
            # ifindexes are per netns: the container's eth0 names its peer's index in the node
            host_end = next((l for l in node["links"] if l.get("kind") == "veth"
                             and l.get("master") == self.bridge
                             and l["index"] == eth0.get("peer_index")), {})
            ips = [ip["address"] for ip in self.results[name].get("ips", [])]
            rows.append({"cnm": "Endpoint", "meaning": CNM_TERMS["endpoint"],
                         "cni": f"one ADD result for ({name}, eth0): {', '.join(ips)}",
                         "kernel": f"veth {host_end.get('name', '?')} (on {self.bridge}) ⇄ eth0 in "
                                   f"{name} ({', '.join(a for a in eth0.get('addrs', []) if ':' not in a)})"})
            routes = [r["dst"] + (f" via {r['gateway']}" if r.get("gateway") else "")
                      for r in snap["routes"] if r["family"] == 4]
            rows.append({"cnm": "Sandbox", "meaning": CNM_TERMS["sandbox"],
                         "cni": f"CNI_NETNS={netns.path_of(name)}",
                         "kernel": f"netns net:[{snap['inode']}] with routes {'; '.join(routes)}"})
        return rows

    def call_rows(self) -> list[list[Any]]:
        """Every plugin the runtime exec'd: a process that got env + stdin and exited."""
        rows = []
        for rt_name, rt in self.runtimes.items():
            for c in rt.calls:
                rows.append([rt_name, c.plugin, c.command, len(c.env), len(c.stdin),
                             len(c.stdout), c.exit_code, f"{c.ms:.0f}"])
        return rows

    def conclusion_rows(self) -> list[list[Any]]:
        """The numbers behind slide 59, from this session."""
        from sandbox.net import netns
        calls = [c for rt in self.runtimes.values() for c in rt.calls]
        node = netns.snapshot(self.node)
        kinds = sorted({l.get("kind") or "?" for l in node["links"]})
        paths = {c.path for c in calls}
        alive = 0
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    argv = (proc / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                alive += any(a.decode(errors="replace") in paths for a in argv[:2])
        rows = [
            ["plugin processes the runtime started", len(calls)],
            ["plugin processes still running now", alive],
            ["plugins the runtime exec'd (each delegated IPAM to host-local by exec, too)",
             ", ".join(sorted({c.plugin for c in calls}))],
            ["bridge implementations used, one configuration", ", ".join(sorted(self.runtimes))],
            ["total plugin time (ms)", f"{sum(c.ms for c in calls):.0f}"],
            ["link kinds the plugins made with plain netlink in the node", ", ".join(kinds)],
            ["API surface: CNI commands vs CNM remote endpoints",
             f"{len(CNI_COMMANDS)} vs {len(CNM_REMOTE_ENDPOINTS)}"],
        ]
        return rows

    def close(self) -> list[str]:
        done = []
        for name in list(self.names):
            self.runtimes[self.attached_with[name]].delete(self.network, name)
            done.append(f"DEL {name} ({self.attached_with[name]} bridge)")
        self.names.clear()
        done += self.session.close()
        return done

    def __enter__(self) -> "CniCnmDemo":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
