"""The picture of a running pod (pods.md, ace.md): which namespaces the apps share (net, IPC, UTS,
PID) and which they do not (each app's mount namespace and its mounts), the processes with their
PIDs inside the pod and on the host, and how the pod's network namespace is attached (veth to the
node's bridge, the metadata service on its loopback). Drawn from :func:`sandbox.pod.perspective.inspect`.
"""
from __future__ import annotations

import html
from typing import Any

import graphviz

from sandbox.viz import HtmlTable, color_for, digraph

SHARED = "#56B4E9"   # the pod's shared namespaces
HOST = "#999999"


def _esc(s: Any) -> str:
    return html.escape(str(s))


def _proc_label(p: dict[str, Any], title: str) -> str:
    cmd = p["cmdline"]
    cmd = cmd if len(cmd) <= 48 else cmd[:45] + "…"
    return (f"<<b>{_esc(title)}</b><br/><font face='Courier' point-size='9'>{_esc(cmd)}</font>"
            f"<br/><font point-size='9'>pid {p['pod_pid']} in the pod · host pid "
            f"{p['host_pid']}</font>>")


def _mount_rows(mounts: list[dict[str, str]], limit: int = 10) -> str:
    rows = []
    for m in mounts[:limit]:
        opt = "ro" if m["options"].split(",")[0] == "ro" else "rw"
        src = m["root"] if m["fstype"] not in ("proc", "sysfs", "devpts", "tmpfs", "overlay") else ""
        src = ("…" + src[-28:]) if len(src) > 29 else src
        cell = f"<font point-size='8'>{_esc(src)}</font>" if src else " "   # no empty <font>
        rows.append(f"<tr><td align='left'><font face='Courier'>{_esc(m['target'])}</font></td>"
                    f"<td>{_esc(m['fstype'])}</td><td>{opt}</td>"
                    f"<td align='left'>{cell}</td></tr>")
    if len(mounts) > limit:
        rows.append(f"<tr><td colspan='4'>… {len(mounts) - limit} more</td></tr>")
    return ("<<table border='0' cellborder='1' cellspacing='0' cellpadding='2'>"
            "<tr><td colspan='4'><b>mounts (as the app sees them)</b></td></tr>"
            + "".join(rows) + "</table>>")


def pod_picture(info: dict[str, Any]) -> graphviz.Digraph:
    """Draw one pod from :func:`sandbox.pod.perspective.inspect`."""
    g = digraph("pod", rankdir="LR", compound="true", newrank="true")
    host = info["host"]["ns"]
    shared = info["shared"]
    with g.subgraph(name="cluster_host") as h:
        h.attr(label=f"host  net:[{host.get('net')}] pid:[{host.get('pid')}] "
                     f"mnt:[{host.get('mnt')}]", style="rounded,filled",
               fillcolor=HOST + "22", color=HOST)
        h.node("kernel", f"<<b>this notebook</b><br/><font point-size='9'>host pid "
                         f"{info['host']['pid']} · hostname {_esc(info['host']['hostname'])}</font>>")
        if info.get("supervisor"):
            h.node("supervisor", _proc_label(info["supervisor"], "stage0 supervisor")
                   .replace(f"pid {info['supervisor']['pod_pid']} in the pod · ", ""))
            if info.get("metadataURL"):
                url = info["metadataURL"].rsplit("/", 1)[0]
                h.node("metadata", f"<<b>metadata service</b><br/><font point-size='9'>"
                                   f"{_esc(url)}/&lt;token&gt;<br/>(a thread of stage0; its "
                                   f"socket lives in the pod's netns)</font>>",
                       shape="component")
                h.edge("supervisor", "metadata", style="dotted", arrowhead="none")
        if info.get("relay"):
            r = info["relay"]
            h.node("relay", f"<<b>stage1 relay</b><br/><font point-size='9'>host pid "
                            f"{r['host_pid']}: the pod's net/ipc/uts/mnt,<br/>the host's PID "
                            f"namespace</font>>")
            if info.get("supervisor"):
                h.edge("supervisor", "relay", label="fork+exec")
    nets = info.get("networks") or []
    if nets:
        with g.subgraph(name="cluster_node") as n:
            n.attr(label="node netns (plays the host's network)", style="rounded,filled",
                   fillcolor="#E69F0022", color="#E69F00")
            n.node("bridge", "<<b>bridge</b><br/><font point-size='9'>sbx-br0 (CNI bridge "
                             "plugin)</font>>", shape="box3d")
    with g.subgraph(name="cluster_pod") as p:
        p.attr(label=f"pod {info['uuid'][:8]}: shared net:[{shared.get('net')}] "
                     f"ipc:[{shared.get('ipc')}] uts:[{shared.get('uts')}] "
                     f"pid:[{shared.get('pid')}]", style="rounded,filled",
               fillcolor=SHARED + "22", color=SHARED, penwidth="2")
        p.node("lo", "<<b>lo</b><br/><font point-size='9'>127.0.0.1 (every app)</font>>",
               shape="box", fillcolor="white")
        for n in nets:
            p.node(f"if_{n['ifname']}", f"<<b>{_esc(n['ifname'])}</b><br/><font point-size='9'>"
                                        f"{_esc(' '.join(n['ips']) or '(no IP)')}<br/>"
                                        f"network {_esc(n['net'])}</font>>")
        if info.get("init"):
            i = info["init"]
            p.node("init", f"<<b>PID 1: stage1 init</b><br/><font point-size='9'>host pid "
                           f"{i['host_pid']} · mnt:[{i['ns'].get('mnt')}] (overlays)</font>>",
                   fillcolor="#ffffe0")
            if info.get("relay"):
                g.edge("relay", "init", label="fork (first child\nof the new PID ns)")
            elif info.get("supervisor"):
                g.edge("supervisor", "init", label="unshare(NEWPID), fork:\nthe first child is PID 1")
        order = [a["name"] for a in info["apps"]]
        procs = {pr["host_pid"]: pr for pr in info["processes"]}
        for a in info["apps"]:
            col = color_for(a["name"], order)
            key = a["name"].replace("-", "_")
            with p.subgraph(name=f"cluster_app_{key}") as c:
                own = a["ns"].get("mnt")
                state = (f"own mnt:[{own}]" if own else
                         f"{a['state']}" + (f" (exit {a['exitCode']})" if a.get("exitCode") is not None else ""))
                c.attr(label=f"app {a['name']}  ·  {state}", style="rounded,filled",
                       fillcolor=col + "33", color=col)
                c.node(f"img_{key}", f"<<font point-size='9'>image {_esc(a['image'])}</font>>",
                       shape="note", fillcolor="white")
                if a["mounts"]:
                    c.node(f"mnt_{key}", _mount_rows(a["mounts"]), shape="plain")
                for pr in info["processes"]:
                    if pr.get("app") != a["name"]:
                        continue
                    title = "app runner (stage1)" if pr["role"] == "runner" else pr["comm"]
                    c.node(f"p{pr['host_pid']}", _proc_label(pr, title),
                           fillcolor="white" if pr["role"] == "app" else "#f4f4f4")
        for pr in info["processes"]:
            parent = pr["ppid"]
            if pr["role"] == "init":
                continue
            if parent in procs:
                src = "init" if procs[parent]["role"] == "init" else f"p{parent}"
                if pr.get("app") is None and pr["role"] != "init":
                    p.node(f"p{pr['host_pid']}", _proc_label(pr, pr["comm"]), fillcolor="#eeeeee")
                g.edge(src, f"p{pr['host_pid']}", color="#555555")
    for n in nets:
        g.edge(f"if_{n['ifname']}", "bridge", label="veth pair", dir="both", color="#E69F00")
    if info.get("metadataURL") and info.get("supervisor"):
        g.edge("metadata", "lo", label="listens on", style="dashed", color="#0072B2")
    return g


def views_table(views: dict[str, str], title: str = "") -> HtmlTable:
    """:func:`sandbox.pod.perspective.side_by_side` output as columns: the host, then each app."""
    return HtmlTable(list(views), [[v.rstrip("\n") for v in views.values()]], title)


