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
    # Long on purpose: one graphviz picture drawn cell by cell, host side first, then the pod.
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




# -- the pod's start, step by step (notebook 07) -------------------------------------------------

_NS = ("net", "pid", "mnt", "ipc", "uts")


def start_picture(lines: list[dict[str, Any]], current: int) -> graphviz.Digraph:
    """The processes of a pod's start as they appear (stage0, its supervisor, the pod's PID 1,
    one runner per app), each with the inode of its net/pid/mnt/ipc/uts namespace coloured by
    whose it is — the host's, the pod's (shared), or its own — and what it has done so far
    (the netns and CNI attachment, each app's overlay, pivot_root, exec). Drawn from the
    journal the stages wrote (:mod:`sandbox.pod.journal`), up to line ``current``."""
    # Long on purpose: one graphviz picture drawn cell by cell, one process after the other.
    from sandbox.palette import kind_color
    now = kind_color("now")
    seen = lines[:current + 1]
    host = seen[0]["ns"]
    procs: dict[str, dict[str, Any]] = {}      # role -> latest line of that process
    done: dict[str, list[str]] = {}            # role -> what it did, in words
    for l in seen:
        procs[l["role"]] = l
        done.setdefault(l["role"], []).append(_deed(l))
    cur = seen[-1]["role"]
    users: dict[tuple[str, int], set[str]] = {}
    for role, l in procs.items():
        for n, ino in l["ns"].items():
            users.setdefault((n, ino), set()).add(role)
    apps = [r for r in procs if r.startswith("app ")]
    order = [r[4:] for r in apps]

    def chip(role: str, n: str) -> str:
        ino = procs[role]["ns"].get(n)
        if ino is None:
            return f"<TD>{n}: ?</TD>"
        if ino == host.get(n):
            color = kind_color("host")
        elif len(users[(n, ino)]) > 1:
            color = kind_color("netns")
        else:
            color = color_for(role[4:], order) if role.startswith("app ") else kind_color("netns")
        # the inode's last digits tell the namespaces apart (the whole number is in the detail)
        return f'<TD BGCOLOR="{color}"><FONT POINT-SIZE="11">{n}<BR/>…{str(ino)[-4:]}</FONT></TD>'

    def label(role: str) -> str:
        l = procs[role]
        title = {"stage0": "stage0 (this process)", "supervisor": "stage0's supervisor",
                 "pid1": "PID 1 of the pod"}.get(role, "its runner")   # (an app's box: its cluster names it)
        pids = (f"pid {l['pid']}" + (f" · host pid {l['proc_pid']}" if l.get("proc_pid") not in
                                       (None, l["pid"]) else ""))
        deeds = "".join(f'<TR><TD COLSPAN="5" ALIGN="LEFT"><FONT POINT-SIZE="11">{html.escape(d)}'
                        f'</FONT></TD></TR>' for d in [d for d in done[role] if d][-4:])
        frame = f'BORDER="3" COLOR="{now}"' if role == cur else 'BORDER="0"'
        return (f'<<TABLE {frame} CELLBORDER="1" CELLSPACING="0" CELLPADDING="3" BGCOLOR="white">'
                f'<TR><TD COLSPAN="5"><B>{html.escape(title)}</B><BR/><FONT POINT-SIZE="11">'
                f'{html.escape(pids)}</FONT></TD></TR><TR>{"".join(chip(role, n) for n in _NS)}</TR>'
                f'{deeds}</TABLE>>')

    g = digraph("podstart", rankdir="TB", compound="true", nodesep="0.3", ranksep="0.35")
    g.attr("node", shape="plain", style="")
    with g.subgraph(name="cluster_host") as h:
        h.attr(label="the host's namespaces", style="rounded,filled",
               fillcolor=kind_color("host") + "33", color=kind_color("host"))
        with h.subgraph() as row:       # side by side: the picture stays short enough to see whole
            row.attr(rank="same")
            for role in ("stage0", "supervisor"):
                if role in procs:
                    row.node(role, label(role))
    if "pid1" in procs or any(l["action"] == "netns" for l in seen):
        with g.subgraph(name="cluster_pod") as p:
            p.attr(label="the pod: shared net, pid, ipc, uts", style="rounded,filled",
                   fillcolor=kind_color("netns") + "22", color=kind_color("netns"), penwidth="2")
            net = next((l for l in seen if l["action"] == "netns"), None)
            if net is not None:
                ips = [ip for l in seen if l["action"] == "cni" for ip in l["detail"].get("ips", [])]
                p.node("netns", f"network namespace\nnet:[{net['detail'].get('inode')}]"
                                + (f"\neth0 {' '.join(ips)}" if ips else ""),
                       shape="ellipse", style="filled", fillcolor=kind_color("netns"))
            if "pid1" in procs:
                p.node("pid1", label("pid1"))
            for role in apps:
                key = role[4:].replace("-", "_")
                with p.subgraph(name=f"cluster_{key}") as c:
                    c.attr(label=role, style="rounded,filled",
                           fillcolor=color_for(role[4:], order) + "44", color=color_for(role[4:], order))
                    c.node(role, label(role))
    if "stage0" in procs and "supervisor" in procs:
        g.edge("stage0", "supervisor", label="fork")
    if "supervisor" in procs and "pid1" in procs:
        g.edge("supervisor", "pid1", label="unshare(NEWPID), fork", lhead="cluster_pod")
    elif "supervisor" in procs and any(l["action"] == "netns" for l in seen):
        g.edge("supervisor", "netns", label="creates", style="dashed")
    for role in apps:
        if "pid1" in procs:
            g.edge("pid1", role, label="fork")
    return g


_DEEDS = {"netns": "made the pod's netns", "listen": "metadata socket in the pod's netns",
          "cgroup": "made the pod's cgroups", "mount": "mounted volumes, /proc, /sys, /dev",
          "unshare": "own mount namespace", "pivot_root": "pivot_root: / = its rootfs",
          "thread": "metadata service thread"}


def _deed(l: dict[str, Any]) -> str:
    """A journal line in a few words, for its process's box ("" = nothing worth a line)."""
    d, a = l.get("detail", {}), l["action"]
    if a == "cni":
        return f"CNI {l['what'].split()[0]}: {' '.join(d.get('ips', []))}"
    if a == "mount" and l["role"] == "pid1":
        return f"{d.get('fstype')} for {d.get('app')}"
    if a == "exec":
        w = f"exec {l['what']}"         # the whole command line is in the step's detail
        return w if len(w) <= 30 else w[:29] + "…"
    return _DEEDS.get(a, "")


def start_frame(steps: Any, k: int) -> Any:
    """The stepper's picture for a pod's start (states of kind ``pod``)."""
    from sandbox.viz.stepper import Frame, last_state
    _, a = last_state(steps, k, "pod")
    return Frame([start_picture(a["journal"], a["i"])])
