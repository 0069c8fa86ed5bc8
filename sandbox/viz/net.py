"""Pictures of network namespaces as the kernel sees them: a node netns with its bridge(s) and
host-side veth ends, each container netns with its interfaces, addresses and routes, and the
veth pairs that cross between them. State is read with pyroute2 (:func:`sandbox.net.netns.snapshot`);
:func:`topology_from` draws already-read snapshots (a test can check ``.source`` directly).
"""
from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

import graphviz

from sandbox.palette import kind_color
from sandbox.viz import digraph, sequence

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
                  show_lo: bool = False, nat: list[str] | None = None,
                  focus: dict[str, Any] | None = None,
                  gone: dict[str, list[dict[str, Any]]] | None = None,
                  node_kind: str = "node",
                  labels: dict[str, tuple[str, str]] | None = None) -> graphviz.Digraph:
    """Draw snapshots: ``node`` (or None) and ``{container name: snapshot}``.

    ``labels`` gives a container another title and kind (``{name: (title, kind)}``: a "LAN"
    namespace the node's uplink plugs into, say). A macvlan or ipvlan link is drawn as a child of
    its master in the node.

    For the stepper: ``nat`` (the node's NAT rules, ``iptables -S`` lines), ``focus`` (the change
    of this step: ``{"ns": "node" or a container name, "kind": link|addr|route|nat, "name": …}``,
    drawn in the "now" colour), ``gone`` (links that this step removed, drawn dashed)."""
    g = digraph("topology", rankdir="LR", compound="true")
    now = kind_color("now")
    focus = focus or {}
    gone = gone or {}

    def hot(key: str, kind: str, name: str | None) -> bool:
        return focus.get("ns") == key and focus.get("kind") == kind and (
            name is None or focus.get("name") == name)

    def add_ns(key: str, title: str, snap: dict[str, Any], prefix: str, kind: str) -> None:
        col = kind_color(kind)
        with g.subgraph(name=f"cluster_{prefix}") as c:
            c.attr(label=f"{title}  net:[{snap['inode']}]", style="rounded,filled",
                   fillcolor=col + "33", color=col)
            for l in snap["links"]:
                if l.get("kind") == "loopback" and not show_lo:
                    continue
                lk = l.get("kind")
                on = hot(key, "link", l["name"]) or hot(key, "addr", l["name"])
                fill = (kind_color("bridge") + "55" if lk == "bridge" else
                        "white" if l["up"] else "#eeeeee")
                border = kind_color("veth") if lk == "veth" else "black"
                c.node(f"{prefix}_{l['index']}", _label(l, show_mac),
                       shape=_KIND_SHAPE.get(lk, "box"), fillcolor=fill,
                       color=now if on else border, penwidth="3" if on else "1")
            if not any(l.get("kind") != "loopback" or show_lo for l in snap["links"]) \
                    and not gone.get(key) and not (prefix == "node" and nat):
                lo = next((l for l in snap["links"] if l.get("kind") == "loopback"), None)
                c.node(f"{prefix}_empty", f"only lo ({'UP' if lo['up'] else 'DOWN'})" if lo else "no links",
                       shape="plaintext", style="", fontcolor="#777777", fontsize="9")
            for l in gone.get(key, []):
                c.node(f"{prefix}_gone_{l['index']}", f"<<s>{html.escape(l['name'] or '?')}</s>"
                       f"<br/><font point-size='9'>gone at this step</font>>", style="rounded,dashed",
                       color=now, fontcolor="#777777", shape="box")
            if snap["routes"] or prefix != "node":
                on = hot(key, "route", None)
                c.node(f"{prefix}_routes", _routes_label(snap["routes"]), shape="note",
                       fillcolor="#fffff0", color=now if on else "black",
                       penwidth="3" if on else "1")
            if prefix == "node" and nat:
                on = hot(key, "nat", None)
                rows = "<br align='left'/>".join(html.escape(_short_rule(r)) for r in nat)
                c.node("node_nat", f"<<font face='Courier' point-size='8'>iptables -t nat -S<br "
                                   f"align='left'/>{rows}<br align='left'/></font>>",
                       shape="note", fillcolor=kind_color("nat") + "22",
                       color=now if on else kind_color("nat"), penwidth="3" if on else "1")

    if node is not None:
        add_ns("node" if node_kind == "node" else node_name, f"{node_kind} {node_name}", node,
               "node", node_kind)
    for i, (name, snap) in enumerate(containers.items()):
        title, kind = (labels or {}).get(name, (f"container {name}", "netns"))
        add_ns(name, title, snap, f"c{i}", kind)
    _order_clusters(g, node is not None)
    if node is not None:
        _node_edges(g, node, containers)
    _veth_edges(g, node, containers)
    return g


def _order_clusters(g: graphviz.Digraph, has_node: bool) -> None:
    """The node left of its containers, even before a veth pair ties them: invisible edges
    between each cluster's first node."""
    firsts = [re.match(r"\s*(\S+)", line).group(1) for line in g.body
              if re.match(r"\s*(node|c\d+)_\S+ \[", line)]
    clusters: dict[str, str] = {}
    for n in firsts:
        clusters.setdefault(n.split("_")[0], n)
    chain = list(clusters.values())
    if has_node and chain and chain[0].startswith("node_"):
        for b in chain[1:]:    # every container one rank right of the node: a column, not a row
            g.edge(chain[0], b, style="invis")
    else:
        for a, b in zip(chain, chain[1:]):
            g.edge(a, b, style="invis")


def _node_edges(g: graphviz.Digraph, node: dict[str, Any],
                containers: dict[str, dict[str, Any]]) -> None:
    """The node's bridge ports, and the macvlan/ipvlan children of its links in containers."""
    by_index = {l["index"]: l for l in node["links"]}
    for l in node["links"]:  # bridge ports
        if l.get("master"):
            br = next((b for b in node["links"] if b["name"] == l["master"]), None)
            if br is not None:
                g.edge(f"node_{br['index']}", f"node_{l['index']}", dir="none",
                       label="port", color=kind_color("bridge"), penwidth="1.5")
    for i, (name, snap) in enumerate(containers.items()):  # macvlan/ipvlan children
        for l in snap["links"]:
            master = by_index.get(l["peer_index"]) if l.get("peer_index") else None
            if l.get("kind") in ("macvlan", "ipvlan") and master is not None \
                    and master.get("kind") not in ("macvlan", "ipvlan"):
                # IFLA_LINK of a macvlan/ipvlan is its master's index (in the master's netns)
                g.edge(f"node_{master['index']}", f"c{i}_{l['index']}", style="dashed",
                       color="#555555", label=f"{l['kind']} child", arrowhead="none")


def _veth_edges(g: graphviz.Digraph, node: dict[str, Any] | None,
                containers: dict[str, dict[str, Any]]) -> None:
    """Veth pairs across namespaces (between containers too)."""
    spaces = ([("node", node)] if node is not None else []) + \
        [(f"c{i}", snap) for i, snap in enumerate(containers.values())]
    for x in range(len(spaces)):
        for y in range(x + 1, len(spaces)):
            for a_id, b_id in _veth_pairs(spaces[x][1], spaces[y][1]):
                g.edge(f"{spaces[x][0]}_{a_id}", f"{spaces[y][0]}_{b_id}", dir="both",
                       style="bold", color=kind_color("veth"), label="veth pair")


def _veth_pairs(one: dict[str, Any], other: dict[str, Any]) -> list[tuple[int, int]]:
    """(index in ``one``, index in ``other``) of the veth pairs between two namespaces: each end
    names the other's index. A veth just created with its peer in another netns is first
    announced with no peer index; it pairs with the one veth that names it, unless the kernel
    said its pair was cut."""
    def veths(snap: dict[str, Any]) -> list[dict[str, Any]]:
        return [l for l in snap["links"] if l.get("kind") == "veth"]

    def names_only(a: dict[str, Any], b: dict[str, Any], b_side: dict[str, Any]) -> bool:
        return (not a.get("peer_index") and not a.get("peer_cut") and b.get("peer_index") == a["index"]
                and sum(1 for c in veths(b_side) if c.get("peer_index") == a["index"]) == 1)
    out = []
    for a in veths(one):
        for b in veths(other):
            mutual = a.get("peer_index") == b["index"] and b.get("peer_index") == a["index"]
            if mutual or names_only(a, b, other) or names_only(b, a, one):
                out.append((a["index"], b["index"]))
    return out


def nodes_from(nodes: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]],
               wires: list[tuple[str, str, str, str]] | None = None) -> graphviz.Digraph:
    """Several nodes, each with its containers: ``{node name: (node snapshot, {container name:
    snapshot})}``, and ``wires`` (``(node a, link a, node b, link b)``: veth pairs between
    nodes). Veth pairs are matched within a node and its own containers only (interface
    indexes are per netns, so pairs across other namespaces would be guesses)."""
    g = digraph("nodes", rankdir="LR", compound="true")
    ids: dict[tuple[str, str], str] = {}
    for n, (name, (snap, conts)) in enumerate(nodes.items()):
        def cluster(key: str, title: str, s: dict[str, Any], kind: str) -> None:
            col = kind_color(kind)
            with g.subgraph(name=f"cluster_{key}") as c:
                c.attr(label=f"{title}  net:[{s['inode']}]", style="rounded,filled",
                       fillcolor=col + "33", color=col)
                for l in s["links"]:
                    if l.get("kind") == "loopback":
                        continue
                    ids[(title, l["name"])] = f"{key}_{l['index']}"
                    c.node(f"{key}_{l['index']}", _label(l, False),
                           shape=_KIND_SHAPE.get(l.get("kind"), "box"),
                           fillcolor=kind_color("bridge") + "55" if l.get("kind") == "bridge" else "white",
                           color=kind_color("veth") if l.get("kind") == "veth" else "black")
                c.node(f"{key}_routes", _routes_label(s["routes"]), shape="note", fillcolor="#fffff0")

        cluster(f"n{n}", f"node {name}", snap, "node")
        by_index = {l["index"]: l for l in snap["links"]}
        for l in snap["links"]:
            if l.get("master"):
                br = next((b for b in snap["links"] if b["name"] == l["master"]), None)
                if br is not None:
                    g.edge(f"n{n}_{br['index']}", f"n{n}_{l['index']}", dir="none", label="port",
                           color=kind_color("bridge"), penwidth="1.5")
        for k, (cname, cs) in enumerate(conts.items()):
            cluster(f"n{n}c{k}", f"container {cname}", cs, "netns")
            for l in cs["links"]:
                peer = by_index.get(l.get("peer_index")) if l.get("kind") == "veth" else None
                if peer is not None and peer.get("peer_index") == l["index"]:
                    g.edge(f"n{n}_{peer['index']}", f"n{n}c{k}_{l['index']}", dir="both",
                           style="bold", color=kind_color("veth"), label="veth pair")
    for a, la, b, lb in wires or []:
        ia, ib = ids.get((f"node {a}", la)), ids.get((f"node {b}", lb))
        if ia and ib:
            g.edge(ia, ib, dir="both", style="bold", color=kind_color("veth"), label="wire",
                   constraint="false")      # the nodes one above the other, their pods right
    return g


def _short_rule(rule: str, width: int = 64) -> str:
    """An iptables rule shortened for a picture: the comment (which says network and container)
    becomes ``/*…*/`` and long chain names keep their start."""
    rule = re.sub(r'-m comment --comment "(?:[^"\\]|\\.)*"', "/*…*/", rule)
    rule = re.sub(r"CNI-([0-9a-f]{8})[0-9a-f]{16}", r"CNI-\1…", rule)
    return rule if len(rule) <= width else rule[:width - 1] + "…"


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


# -- namespace creation, step by step (notebook 05, lab 4) ------------------------------------

def _states_upto(steps: Any, k: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None, int]:
    """(state at or before step k, the state recorded before that one, its step index)."""
    j = k
    while j >= 0 and not steps[j].after:
        j -= 1
    if j < 0:
        return None, None, -1
    i = j - 1
    while i >= 0 and not (steps[i].after and steps[i].after.get("kind") == steps[j].after.get("kind")):
        i -= 1
    return steps[j].after, (steps[i].after if i >= 0 else None), j


def tasks_picture(state: dict[str, Any], prev: dict[str, Any] | None = None, *,
                  host_netns: int | None = None, focus: int | None = None,
                  title: str = "") -> graphviz.Digraph:
    """Threads of this process and the network namespace each is in, and the handle files
    (:func:`sandbox.net.netns.tasks_state`). ``prev``: the state before, so a thread that has
    ended is drawn dashed; ``focus``: the thread the step acted on (drawn in the "now" colour);
    ``host_netns``: the namespace to call the host's."""
    g = digraph("tasks", rankdir="LR", nodesep="0.25", ranksep="0.7")
    if title:
        g.attr(label=title, labelloc="t", fontsize="12")
    _draw_tasks(g, state, prev, host_netns, focus, "")
    return g


def _draw_tasks(g: Any, state: dict[str, Any], prev: dict[str, Any] | None, host: int | None,
                focus: int | None, p: str) -> None:
    now = kind_color("now")
    main = state["main"]
    if host is None:
        host = next((t["netns"] for t in state["threads"] if t["tid"] == main), None)
    tids = {t["tid"] for t in state["threads"]}
    shown = [t for t in state["threads"] if t["tid"] in (main, focus) or t["netns"] != host]
    others = [t for t in state["threads"] if t not in shown]
    ended = [t for t in (prev or {}).get("threads", [])
             if t["tid"] not in tids and (t["netns"] != host or t["tid"] == focus)]
    inodes = [host] + [t["netns"] for t in shown] + [h["netns"] for h in state["handles"] if h.get("netns")]
    with g.subgraph(name=f"cluster_{p}proc") as c:
        c.attr(label=f"process {state['pid']} (this Python)", style="rounded,filled",
               fillcolor=kind_color("process") + "33", color="#999999", fontsize="10")
        for t in shown:
            who = ("main thread" if t["tid"] == main else
                   "helper thread" if t["tid"] == focus else "thread")
            c.node(f"{p}t{t['tid']}", f"{who}\ntid {t['tid']}", fillcolor=kind_color("process"),
                   color=now if t["tid"] == focus else "black",
                   penwidth="3" if t["tid"] == focus else "1")
        for t in ended:
            c.node(f"{p}t{t['tid']}", f"helper thread {t['tid']}\n(ended)", style="rounded,dashed",
                   color=now, fontcolor="#777777")
        if others:
            c.node(f"{p}others", f"{len(others)} other threads\n(same netns as main)",
                   fillcolor=kind_color("process") + "88", fontsize="9")
    for ino in dict.fromkeys(i for i in inodes if i is not None):
        is_host = ino == host
        g.node(f"{p}n{ino}", f"network namespace\nnet:[{ino}]" + ("\n(the host's)" if is_host else ""),
               shape="ellipse", fillcolor=kind_color("host" if is_host else "netns"), style="filled")
    for t in shown:
        g.edge(f"{p}t{t['tid']}", f"{p}n{t['netns']}", label="in",
               color=now if t["tid"] == focus else "#555555",
               penwidth="2.5" if t["tid"] == focus else "1")
    if others and host is not None:
        g.edge(f"{p}others", f"{p}n{host}", label="in", color="#999999")
    for i, h in enumerate(state["handles"]):
        name = html.escape(Path(h["path"]).name)
        where = html.escape(h["path"])
        if not h["exists"]:
            g.node(f"{p}h{i}", f"<<b>{name}</b><br/><font point-size='9'>(no file)</font>>",
                   shape="note", style="dashed")
        elif h.get("netns"):
            g.node(f"{p}h{i}", f"<<b>{name}</b><br/><font point-size='9'>{where}<br/>bind mount "
                               f"of nsfs, inode {h['netns']}</font>>",
                   shape="note", fillcolor="white", color=kind_color("mount"), penwidth="2")
            g.edge(f"{p}h{i}", f"{p}n{h['netns']}", label="bind mount\nkeeps it alive",
                   color=kind_color("mount"), penwidth="2")
        else:
            g.node(f"{p}h{i}", f"<<b>{name}</b><br/><font point-size='9'>{where}<br/>empty file, "
                               f"inode {h['inode']}</font>>", shape="note", fillcolor="white")


def netns_frame(steps: Any, k: int) -> Any:
    """The stepper's picture for namespace creation (states of kind ``netns``)."""
    from sandbox.viz.stepper import Frame
    state, prev, j = _states_upto(steps, k)
    assert state is not None
    focus = steps[k].detail.get("thread") if j == k else None
    return Frame([tasks_picture(state, prev, host_netns=_host_netns(steps), focus=focus)])


def _host_netns(steps: Any) -> int | None:
    first = next(s.after for s in steps if s.after and s.after.get("kind") == "netns")
    return next((t["netns"] for t in first["threads"] if t["tid"] == first["main"]), None)


def netns_before_after(steps: Any) -> graphviz.Digraph:
    """The first and the last recorded namespace state side by side."""
    states = [s.after for s in steps if s.after and s.after.get("kind") == "netns"]
    if not states:
        raise ValueError("no namespace state was recorded (use Steps(snapshots=True))")
    host = _host_netns(steps)
    g = digraph("before_after", rankdir="LR")
    for name, st in (("before", states[0]), ("after", states[-1])):
        with g.subgraph(name=f"cluster_{name}") as c:
            c.attr(label=f"{name} (step {1 if name == 'before' else len(steps)})", fontsize="13",
                   style="rounded", color="#999999")
            _draw_tasks(c, st, None, host, None, name + "_")
    return g


# -- CNI ADD / DEL / GC, step by step (notebook 06, lab 5) --------------------------------------

SEQ_ROWS = 14   # rows of the sequence diagram shown at once (the latest ones)


def cni_sequence(steps: Any, k: int, film: Any) -> graphviz.Digraph:
    """The plugin execs of ``film``'s operation up to step ``k`` as a sequence diagram: the
    runtime, each plugin, the kernel; exec (env + stdin), answer (exit code, time), the files
    a plugin wrote and each kernel change (from the plugin then running)."""
    rows: list[tuple[str, str, str, str, str]] = []
    current = None
    active: list[str] = []          # runtime-level plugin calls not answered yet
    parties = ["runtime"]
    ok, bad, ink = kind_color("ok"), kind_color("refused"), "#333333"
    for j in range(k + 1):
        s = steps[j]
        if not s.after or s.after.get("film") is not film:
            continue
        d = s.detail
        by = d.get("by")
        row: tuple[str, str, str, str, str] | None = None
        if s.action == "call":
            callee = d.get("plugin", s.what.split()[0])
            caller = by or "runtime"
            stdin = d.get("stdin") or ""
            row = (caller, callee, f"exec {d.get('command', '')}: env + stdin ({len(stdin)} B)",
                   ink, "solid")
            if not by:
                active.append(callee)
        elif s.action in ("exec", "exit") and ("exit_code" in d):
            callee = s.what.split()[0]
            caller = by or "runtime"
            if by is None and s.action == "exec":
                if callee in active:
                    active.remove(callee)
            code = d.get("exit_code")
            out = (d.get("stdout") or "").strip()
            row = (callee, caller, f"exit {code} · {float(d.get('ms') or 0):.0f} ms"
                   + (" · result" if out.startswith("{") and code == 0 else ""),
                   ok if code == 0 else bad, "dashed")
        elif s.action in ("write", "unlink", "read"):
            who = by or "runtime"
            row = (who, who, f"{s.action} {Path(s.what).name}"[:40], kind_color("file"), "dotted")
        elif s.action == "check" and not by:
            row = ("runtime", "runtime", s.what[:40], "#777777", "dotted")
        elif s.action == "exec" and by:
            row = (by, "kernel", s.what, ink, "solid")
        elif s.action in ("netlink", "nftables"):
            who = active[-1] if active else "runtime"
            text = _short_rule(s.what.replace("iptables: ", ""), 34) if s.action == "nftables" \
                else (s.what if len(s.what) <= 34 else s.what[:33] + "…")
            row = (who, "kernel", text, kind_color("nat") if s.action == "nftables" else
                   kind_color("veth"), "solid")
        if row is None:
            continue
        for p in row[:2]:
            if p not in parties and p != "kernel":
                parties.append(p)
        rows.append(row)
        if j == k:
            current = len(rows) - 1
    parties.append("kernel")
    earlier = max(0, len(rows) - SEQ_ROWS)
    shown = rows[earlier:]
    fills = {p: kind_color("plugin") for p in parties}
    fills.update({"runtime": kind_color("process"), "kernel": kind_color("node")})
    return sequence(parties, shown, fills=fills, earlier=earlier,
                    current=None if current is None else current - earlier)


def cni_frame(steps: Any, k: int) -> Any:
    """The stepper's pictures for states of kind ``net``: the kernel topology right after step
    ``k``, and for a CNI operation the sequence of execs so far (beside the detail). A film of
    namespaces watched on their own (:meth:`sandbox.net.watch.KernelFilm.record_into`, e.g. a
    learner's ``ip`` commands) draws them side by side."""
    from sandbox.viz.stepper import Frame, last_state
    j, after = last_state(steps, k, "net")
    film, i = after["film"], after["i"]
    kernel = getattr(film, "kernel", film)           # a CNI film wraps the kernel's
    state = kernel.state(i)
    spaces = state["namespaces"]
    focus, gone = None, {}
    s = steps[k]
    if j == k and s.action in ("netlink", "nftables") and i >= 0:
        change = kernel.change(i)
        focus = {"ns": change["ns"], "kind": change["kind"],
                 "name": None if change["kind"] in ("route", "nat") else change["name"]}
        if change["kind"] == "link" and ("deleted" in change["what"] or "moved" in change["what"]):
            before = kernel.state(i - 1)["namespaces"][change["ns"]]
            now_idx = {l["index"] for l in spaces[change["ns"]]["links"]}
            gone[change["ns"]] = [l for l in before["links"] if l["index"] not in now_idx]
    note = (f"<div style='color:#555;margin-bottom:4px'>{html.escape(after.get('op', ''))} · kernel "
            f"state after change {i + 1} of {len(kernel.events)} notifications</div>")
    if film is kernel:                               # namespaces on their own: peers
        topo = topology_from(None, spaces, focus=focus, gone=gone,
                             labels={n: (f"netns {n}", "netns") for n in spaces})
        return Frame([topo], note=note)
    home = kernel.labels[0]
    node = spaces.get(home)
    containers = {n: spaces[n] for n in kernel.labels[1:]}
    topo = topology_from(node, containers,
                         node_name=Path(node["path"]).name if node and node["path"] else home,
                         nat=state["nat"], focus=focus, gone=gone,
                         node_kind="node" if home == "node" else "host")
    return Frame([topo], note=note, aside=[cni_sequence(steps, k, film)])
