"""Pictures of network namespaces as the kernel sees them: a node netns with its bridge(s) and
host-side veth ends, each container netns with its interfaces, addresses and routes, and the
veth pairs that cross between them. State is read with pyroute2 (:func:`sandbox.net.netns.snapshot`);
:func:`topology_from` draws already-read snapshots (a test can check ``.source`` directly).
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import graphviz

from sandbox.viz import color_for, digraph

_KIND_SHAPE = {"bridge": "box3d", "veth": "box", "loopback": "box", None: "box"}


def _label(link: dict[str, Any], show_mac: bool) -> str:
    rows = [f"<b>{html.escape(link['name'] or '?')}</b>"
            f" <font point-size='9'>({html.escape(link.get('kind') or 'link')}, "
            f"{'UP' if link['up'] else 'DOWN'})</font>"]
    for a in link.get("addrs", []):
        if a.startswith("fe80:"):
            continue  # link-local IPv6: present on every up link, noise here
        rows.append(f"<font face='Courier'>{html.escape(a)}</font>")
    if show_mac and link.get("mac") and link.get("kind") != "loopback":
        rows.append(f"<font point-size='8' color='#555555'>{html.escape(link['mac'])}</font>")
    return "<" + "<br/>".join(rows) + ">"


def _routes_label(routes: list[dict[str, Any]]) -> str:
    lines = [f"{r['dst']}" + (f" via {r['gateway']}" if r.get("gateway") else "")
             + (f" dev {r['dev']}" if r.get("dev") else "") for r in routes if r.get("family") == 4]
    body = "<br align='left'/>".join(html.escape(l) for l in lines) or "(no IPv4 routes)"
    return f"<<font face='Courier' point-size='9'>routes:<br align='left'/>{body}<br align='left'/></font>>"


def topology_from(node: dict[str, Any] | None, containers: dict[str, dict[str, Any]], *,
                  node_name: str = "node", show_mac: bool = False,
                  show_lo: bool = False) -> graphviz.Digraph:
    """Draw snapshots: ``node`` (or None) and ``{container name: snapshot}``."""
    g = digraph("topology", rankdir="LR", compound="true")
    order = ["node", *containers]

    def add_ns(key: str, title: str, snap: dict[str, Any], prefix: str) -> None:
        with g.subgraph(name=f"cluster_{prefix}") as c:
            c.attr(label=f"{title}  net:[{snap['inode']}]", style="rounded,filled",
                   fillcolor=color_for(key, order) + "33", color=color_for(key, order))
            for l in snap["links"]:
                if l.get("kind") == "loopback" and not show_lo:
                    continue
                c.node(f"{prefix}_{l['index']}", _label(l, show_mac),
                       shape=_KIND_SHAPE.get(l.get("kind"), "box"),
                       fillcolor="white" if l["up"] else "#eeeeee")
            if snap["routes"] or prefix != "node":
                c.node(f"{prefix}_routes", _routes_label(snap["routes"]), shape="note",
                       fillcolor="#fffff0")

    if node is not None:
        add_ns("node", f"node {node_name}", node, "node")
    for i, (name, snap) in enumerate(containers.items()):
        add_ns(name, f"container {name}", snap, f"c{i}")

    if node is not None:
        by_index = {l["index"]: l for l in node["links"]}
        for l in node["links"]:  # bridge ports
            if l.get("master"):
                br = next((b for b in node["links"] if b["name"] == l["master"]), None)
                if br is not None:
                    g.edge(f"node_{br['index']}", f"node_{l['index']}", dir="none",
                           label="port", color="#666666")
        for i, (name, snap) in enumerate(containers.items()):  # veth pairs across namespaces
            for l in snap["links"]:
                if l.get("kind") != "veth" or not l.get("peer_index"):
                    continue
                peer = by_index.get(l["peer_index"])
                if peer is not None and peer.get("kind") == "veth" and peer.get("peer_index") == l["index"]:
                    g.edge(f"node_{peer['index']}", f"c{i}_{l['index']}", dir="both",
                           style="bold", color="#0072B2", label="veth pair")
    return g


def topology(node: str | os.PathLike[str] | None, containers: list[str | os.PathLike[str]], *,
             show_mac: bool = False, show_lo: bool = False) -> graphviz.Digraph:
    """Read the node and container namespaces with pyroute2 and draw them."""
    from sandbox.net import netns

    node_snap = netns.snapshot(node) if node is not None else None
    snaps = {Path(os.fspath(c)).name: netns.snapshot(c) for c in containers}
    return topology_from(node_snap, snaps, node_name=Path(os.fspath(node)).name if node else "",
                         show_mac=show_mac, show_lo=show_lo)


def netns_picture(*names: str, node: str | None = None) -> Any:
    """The namespaces that exist among ``names`` (and ``node``), drawn by :func:`topology`;
    a sentence when none exists yet (labs draw the learner's namespaces while they build them)."""
    from sandbox.net import netns
    alive = [n for n in names if netns.is_netns(netns.path_of(n))]
    if node is not None and not netns.is_netns(netns.path_of(node)):
        node = None
    if not alive and node is None:
        return "no network namespace yet"
    return topology(node, alive)
