"""The course's pictures and widgets: the map of the course, the slide explorer, the welcome
notebook's tables, and notebook 09's side-by-side of CNM and CNI (from
:class:`sandbox.course.cnm_demo.CniCnmDemo`).

* :func:`course_map` draws the notebooks in order with the labs hanging off them.
* :func:`slide_explorer` is a live widget: pick a slide, see where it is taught.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import graphviz

from sandbox import config
from sandbox.course.cnm_demo import CniCnmDemo
from sandbox.course.slides import (
    CourseError,
    chapters,
    coverage_path,
    load_coverage,
)
from sandbox.palette import kind_color
from sandbox.viz import HtmlTable, color_for, digraph


def course_map(root: Path | None = None) -> graphviz.Digraph:
    """The notebooks in order (with the slides each covers) and the labs beside them."""
    from sandbox.course import labs as labs_mod
    root = root or config.project_root()
    chs = chapters(root)
    try:
        cov = load_coverage(coverage_path(root))
    except CourseError:
        cov = {}
    per_nb: dict[str, set[int]] = {}
    for k, v in cov.get("slides", {}).items():
        for nb, _ in v.get("sections", []):
            per_nb.setdefault(Path(nb).name, set()).add(int(k))
    g = digraph("course", rankdir="TB", nodesep="0.3", ranksep="0.35")
    order = [n for n, _, _ in chs]
    prev = None
    for num, title, p in chs:
        s = sorted(per_nb.get(p.name, ()))
        slides = f"\\nslides {_ranges(s)}" if s else ""
        g.node(f"nb{num}", f"{num} · {title}{slides}", fillcolor=color_for(num, order) + "55",
               color=color_for(num, order), URL=f"../notebooks/{p.name}")
        if prev:
            g.edge(prev, f"nb{num}")
        prev = f"nb{num}"
    have = set(order)
    for lab in labs_mod.discover(root / "labs"):
        after = lab.follows
        if after not in have:
            after = order[-1] if order else None
        g.node(f"lab{lab.number}", f"lab {lab.number}\\n{lab.title.split('·', 1)[-1].strip()}",
               shape="note", fillcolor="#fffff0", fontsize="9")
        if after:
            with g.subgraph() as s:
                s.attr(rank="same")
                s.node(f"nb{after}")
                s.node(f"lab{lab.number}")
            g.edge(f"nb{after}", f"lab{lab.number}", style="dashed", arrowhead="none")
    return g


def _ranges(ns: list[int]) -> str:
    out, start, prev = [], None, None
    for n in ns + [None]:  # type: ignore[list-item]
        if start is None:
            start = prev = n
        elif n is not None and n == prev + 1:  # type: ignore[operator]
            prev = n
        else:
            out.append(f"{start}" if start == prev else f"{start}–{prev}")
            start = prev = n
    return ", ".join(out)


def slide_explorer(coverage: dict[str, Any] | None = None,
                   slides: dict[int, str] | None = None):
    """A live widget: choose a slide, see which notebook sections teach it."""
    import ipywidgets as w
    cov = coverage or load_coverage()
    slides = slides or {int(k): v.get("title", "") for k, v in cov["slides"].items()}
    options = [(f"Slide {n} — {t}"[:70], n) for n, t in sorted(slides.items())]
    pick = w.Dropdown(options=options, description="slide", layout=w.Layout(width="480px"))
    out = w.HTML()

    def show(change: Any = None) -> None:
        entries = cov["slides"].get(str(pick.value), {}).get("sections", [])
        items = "".join(f"<li><code>{html.escape(nb)}</code> — {html.escape(h.lstrip('#').strip())}"
                        "</li>" for nb, h in entries) or "<li>(not covered)</li>"
        out.value = f"<div class='sbx-slide-sections'><b>Slide {pick.value}</b> is taught in:<ul>{items}</ul></div>"

    pick.observe(show, names="value")
    show()
    box = w.VBox([pick, out])
    box.add_class("sbx-slide-explorer")
    return box


class HTMLText:
    """Text that shows as HTML in a notebook and as plain text elsewhere."""

    def __init__(self, html_text: str, text: str) -> None:
        self.html, self.text = html_text, text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def _table(head: list[str], rows: list[list[Any]]) -> HTMLText:
    h = "".join(f"<th style='text-align:left'>{html.escape(x)}</th>" for x in head)
    b = "".join("<tr>" + "".join(f"<td style='text-align:left'>{c if isinstance(c, _Raw) else html.escape(str(c))}</td>"
                                 for c in r) + "</tr>" for r in rows)
    text = "\n".join(" | ".join(str(c) for c in r) for r in [head, *rows])
    return HTMLText(f"<table><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>", text)


class _Raw(str):
    """Cell content that is already HTML."""


def labs_table() -> HTMLText:
    from sandbox.course import labs
    root = config.project_root()
    return _table(["lab", "what you do", "notebook", "check from a terminal"],
                  [[l.number, l.title.split("·", 1)[-1].strip(), str(l.student.relative_to(root)),
                    f"sandbox lab check {l.number}"] for l in labs.discover()])




def lab_reset_button(number: int) -> Any:
    """The labs' clean-up cell: a button that removes what lab ``number`` made (like ``sandbox lab
    reset N``). Showing it does nothing, so "Run All" leaves the finished lab for the check."""
    import ipywidgets as w
    from sandbox.course import labs
    from sandbox.errors import SandboxError
    button = w.Button(description=f"Remove what lab {number} made", icon="trash",
                      button_style="warning", layout=w.Layout(width="auto"))
    out = w.HTML()

    def click(_: Any = None) -> None:
        button.disabled = True
        try:
            done = labs.reset(number)
        except SandboxError as e:
            out.value = f"<span class='sbx-reset-error'>{html.escape(str(e))}</span>"
        else:
            lines = done or [f"lab {number}: nothing to remove"]
            out.value = "<br>".join(html.escape(l) for l in lines)
        finally:
            button.disabled = False

    button.on_click(click)
    box = w.VBox([button, out])
    box.add_class("sbx-lab-reset")
    box.button, box.output = button, out   # for tests and the learner-journey player
    return box


def reset_preview() -> HTMLText:
    """What ``sandbox reset`` would remove right now (nothing is removed)."""
    from sandbox.course import reset
    lines = reset.plan()
    return _table(["sandbox reset would remove"], [[l] for l in lines] or [["nothing: the machine is clean"]])


# ---------------------------------------------------------------------------------------------
# Notebook 09: one container connected the CNI way and the CNM way (sandbox.course.cnm_demo)

# CNM's objects in the kit's kind colours: a network is a bridge, an endpoint a veth pair, a
# sandbox a network namespace (sandbox.palette.KINDS)
_CNM_KIND = {"Network": "bridge", "Endpoint": "veth", "Sandbox": "netns"}


def cnm_side_by_side(demo: CniCnmDemo) -> HtmlTable:
    """CNM's network / endpoint / sandbox in both models, read off the live kernel state."""
    return HtmlTable(["CNM object", "model", "on the slide", "in the API", "in the kernel now"],
                     [[r["cnm"], r["model"], r["meaning"], r["api"], r["kernel"]] for r in demo.rows()])


def cnm_sequences(demo: CniCnmDemo) -> HtmlTable:
    """The same life of a container, phase by phase: plugin execs vs HTTP calls."""
    return HtmlTable(["phase", "CNI: the runtime execs plugins", "CNM: libnetwork calls the driver"],
                     demo.sequence_rows(), "what actually ran in this session")


def cnm_who_configured(demo: CniCnmDemo) -> HtmlTable:
    """Slide 56: which process changed which network namespace."""
    return HtmlTable(["model", "who", "changed the kernel in"], demo.who_configured_rows())


def cnm_wire(demo: CniCnmDemo, last: int | None = None) -> HtmlTable:
    """The HTTP exchanges with the driver (all, or the ``last`` ones): path, request, reply."""
    import json
    calls = demo.ctl.calls if demo.ctl else []
    calls = calls[-last:] if last else calls

    def js(v: Any) -> str:
        return "(empty body)" if v is None else json.dumps(v, indent=1)[:600]

    return HtmlTable(["POST", "request body", "HTTP", "reply"],
                     [[c.path, js(c.request), c.status, js(c.reply)] for c in calls])


def cnm_api_comparison(demo: CniCnmDemo) -> HtmlTable:
    """The whole remote driver protocol (both APIs), each endpoint with when libnetwork calls it
    and whether this session did."""
    return HtmlTable(["API", "method", "when libnetwork calls it", "", "called here"],
                     demo.api_rows(), "libnetwork remote drivers: docs/remote.md and docs/ipam.md")


def cni_commands(demo: CniCnmDemo) -> HtmlTable:
    return HtmlTable(["CNI_COMMAND", "exec'd here"], demo.cni_command_rows(),
                     "CNI (SPEC.md §2): one executable, run once per command")


def cnm_pings(demo: CniCnmDemo) -> HtmlTable:
    return HtmlTable(["between", "ping", "answer"], demo.pings(),
                     "the kernel does not care which model made the links")


def cnm_conclusion(demo: CniCnmDemo) -> HtmlTable:
    """The numbers behind slide 59, from this session."""
    return HtmlTable(["slide 59, measured here", "value"], demo.conclusion_rows())


def cnm_picture(demo: CniCnmDemo) -> graphviz.Digraph:
    """Both networks in the node, their sandboxes, and — dashed — who made what: the CNI plugin
    (a process that has exited) made its bridge *and* each eth0; the CNM driver (still running)
    made only node-side links, and the controller configured each sandbox."""
    from sandbox.net import netns
    node = netns.snapshot(demo.node)
    links = {l["name"]: l for l in node["links"]}
    col = {k: kind_color(v) for k, v in _CNM_KIND.items()}
    who = dict(style="dashed", color="#555555", fontcolor="#555555", constraint="false")
    g = digraph("cnm_cni", rankdir="LR", compound="true", nodesep="0.3", ranksep="0.45")
    cnm_bridge = next((l["name"] for l in node["links"] if l.get("kind") == "bridge"
                       and l["name"] != demo.bridge), None)
    sides = [("CNI", demo.bridge, demo.names), ("CNM", cnm_bridge, demo.cnm_names)]
    g.node("plugin", "CNI bridge plugin\\nexec'd once per call,\\nexited", shape="component",
           style="dashed,filled", fillcolor=kind_color("plugin") + "33", color=kind_color("plugin"))
    with g.subgraph(name="cluster_node") as n:
        n.attr(label=f"node netns {demo.node} (plays the host)", style="rounded,filled",
               color=kind_color("node"), fillcolor=kind_color("node") + "22")
        for model, br, _ in sides:
            with n.subgraph(name=f"cluster_{model}") as c:
                title = (f"CNI network {demo.network}" if model == "CNI" else
                         f"CNM network {demo.net.id[:12]}…" if demo.net else "CNM network")
                c.attr(label=title, style="rounded,dashed", color="#999999")
                if model == "CNM" and demo.driver is not None:
                    alive = demo.driver.proc.poll() is None
                    c.node("driver", f"CNM remote driver, pid {demo.driver.pid}\\n"
                                     f"{'running' if alive else 'stopped'}, socket {demo.driver.socket.name}",
                           shape="component", fillcolor=kind_color("process") + "55")
                if not br or br not in links:
                    continue
                addrs = ", ".join(a for a in links[br]["addrs"] if ":" not in a)
                c.node(f"br_{br}", f"{br} (bridge)\\n{addrs}\\nCNM: Network", shape="box3d",
                       fillcolor=col["Network"] + "55")
                for l in node["links"]:
                    if l.get("kind") == "veth" and l.get("master") == br:
                        c.node(f"h{l['index']}", l["name"], fillcolor=col["Endpoint"] + "55")
                        g.edge(f"br_{br}", f"h{l['index']}", arrowhead="none")
                g.edge("plugin" if model == "CNI" else "driver", f"br_{br}", taillabel="made",
                       labeldistance="2.5", **who)
    if demo.ctl is not None:
        g.node("controller", "CNM controller\\n(libnetwork's part,\\nthis kernel)",
               shape="component", fillcolor=kind_color("process") + "55")
    # each sandbox once, with the interface(s) each model gave it
    sandboxes: dict[str, list[tuple[str, str]]] = {}
    for model, _, names in sides:
        for name in names:
            sandboxes.setdefault(name, []).append((model, demo.ifname(name, model)))
    for name, ifaces in sandboxes.items():
        snap = netns.snapshot(name)
        links = {l["name"]: l for l in snap["links"]}
        models = " + ".join(m for m, _ in ifaces)
        with g.subgraph(name=f"cluster_{name}") as c:
            c.attr(label=f"{name} ({models})\\nCNM: Sandbox", style="rounded,filled",
                   fillcolor=col["Sandbox"] + "33", color=col["Sandbox"])
            for model, ifname in ifaces:
                l = links.get(ifname)
                text = (f"{ifname}\\n" + ", ".join(a for a in l["addrs"] if ":" not in a)
                        if l else f"no {ifname}")
                c.node(f"{name}_{ifname}", text, fillcolor="white")
        for model, ifname in ifaces:
            l = links.get(ifname)
            if l is None:
                continue
            peer = next((h for h in node["links"] if h["index"] == l.get("peer_index")), None)
            if peer:
                g.edge(f"h{peer['index']}", f"{name}_{ifname}", dir="both", penwidth="2",
                       color=col["Endpoint"], label="veth pair:\\nEndpoint")
            if model == "CNI":
                g.edge("plugin", f"{name}_{ifname}", label="configured", **who)
            elif demo.ctl is not None:
                g.edge(f"{name}_{ifname}", "controller", style="invis")
                g.edge("controller", f"{name}_{ifname}", label="configured", **who)
    return g


# ---------------------------------------------------------------------------------------------
# Where the learner stands (notebook 00), and the toolbar at the top of every notebook

def _when(t: float | None) -> str:
    import time
    if not t:
        return ""
    lt, now = time.localtime(t), time.localtime()
    return time.strftime("today %H:%M" if lt[:3] == now[:3] else "%d %b %H:%M", lt)


def overview_html(root: Path | None = None) -> str:
    """The course overview as HTML: notebooks visited, self-checks answered, labs passed."""
    from sandbox.course import labs as labs_mod
    from sandbox.course import progress, selfchecks
    from sandbox.palette import STATUS
    chs = chapters(root)
    names = [p.stem for _, _, p in chs]
    counts = selfchecks.counts()
    found = labs_mod.discover()
    s = progress.summary(names, {n: counts[n] for n in names if n in counts},
                         [l.number for l in found])
    ok = f"<span style='color:{STATUS['ok']}'>✓</span>"
    rows = []
    for num, title, p in chs:
        seen = s["notebooks"].get(p.stem)
        q = s["quizzes"].get(p.stem)
        rows.append([f"{num} · {title}", _Raw(f"{ok} {_when(seen.get('last'))}" if seen else "–"),
                     _Raw((ok + " " if q[0] == q[1] else "") + f"{q[0]} of {q[1]}") if q else "–"])
    nb_table = _table(["notebook", "visited", "self-check right"], rows)
    lrows = []
    for lab in found:
        rec = s["labs"].get(lab.number)
        total = len(lab.checks)
        lrows.append([f"lab {lab.number} · {lab.title}",
                      _Raw((ok + " " if rec and rec.get("done") else "")
                           + (f"{rec['passed']} of {rec.get('total', total)}" if rec else f"0 of {total}")),
                      _when(rec.get("time")) if rec else "not checked yet"])
    lab_table = _table(["lab", "checks passed", "last check"], lrows)
    head = (f"<div class='sbx-overview'><b>{s['visited']} of {len(names)} notebooks visited · "
            f"{s['answered']} of {s['questions']} self-check questions answered right · "
            f"{s['labs_passed']} of {len(found)} labs passed</b>"
            f"<div style='font-size:11px'>from {html.escape(str(progress.path()))} — it never "
            "leaves this machine</div>")
    return f"{head}{nb_table.html}<br>{lab_table.html}</div>"


def course_overview() -> Any:
    """Notebook 00's progress widget: the overview, with a Refresh button."""
    from sandbox.viz import static_mode
    if static_mode():
        return HTMLText(overview_html(), "course overview")
    import ipywidgets as w
    body = w.HTML(overview_html())
    button = w.Button(description="Refresh", icon="refresh", layout=w.Layout(width="100px"))

    def refresh(_: Any = None) -> None:
        body.value = overview_html()

    button.on_click(refresh)
    box = w.VBox([button, body])
    box.add_class("sbx-course-overview")
    box.refresh = refresh
    return box


def doctor_html() -> str:
    """``sandbox doctor``'s lines as HTML."""
    from sandbox.course import doctor
    from sandbox.palette import STATUS
    colour = {"ok": STATUS["ok"], "warn": STATUS["warn"], "fail": STATUS["bad"]}
    rows = "".join(f"<div style='color:{colour[f.status]}'><code>{html.escape(f.line(10))}</code></div>"
                   for f in doctor.run())
    return f"<div class='sbx-doctor'>{rows}</div>"


def toolbar(notebook: str) -> Any:
    """The bar under every notebook's title: records the visit (progress), and opens the live
    state view, the environment checks (``sandbox doctor``) or the course overview below it."""
    from sandbox.course import progress
    from sandbox.viz import static_mode
    if static_mode():
        return HTMLText("<div class='sbx-toolbar' style='font-size:12px;color:#666'>In JupyterLab "
                        "this bar opens the live state view, <code>sandbox doctor</code> and your "
                        "progress.</div>", "")
    progress.record_visit(notebook)
    import ipywidgets as w
    from sandbox.viz.state import StateView
    pick = w.ToggleButtons(options=["–", "state view", "doctor", "my progress"], value="–",
                           tooltips=["close", "what the kit made on this machine, live",
                                     "sandbox doctor: is this machine ready?",
                                     "notebooks visited, self-checks, labs"],
                           style=w.ToggleButtonsStyle(button_width="110px"))
    panel = w.VBox([])
    current: dict[str, Any] = {}

    def show(change: Any = None) -> None:
        old = current.pop("view", None)
        if old is not None and hasattr(old, "close") and not isinstance(old, w.Widget):
            old.close()      # stops a state view's timer
        if pick.value == "state view":
            view = current["view"] = StateView()
            panel.children = [view.box]
        elif pick.value == "doctor":
            panel.children = [w.HTML(doctor_html())]
        elif pick.value == "my progress":
            panel.children = [w.HTML(overview_html())]
        else:
            panel.children = []

    pick.observe(show, names="value")
    box = w.VBox([pick, panel])
    box.add_class("sbx-toolbar")
    box.pick, box.panel = pick, panel
    return box


# ---------------------------------------------------------------------------------------------
# Notebook 06b: CNI beyond one bridge (sandbox.course.cni_tour)

def json_side_by_side(docs: dict[str, Any]) -> HtmlTable:
    """Several JSON documents in one row, each under its title."""
    import json
    return HtmlTable(list(docs), [[json.dumps(d, indent=2) for d in docs.values()]])


def tour_plugins(tour: Any) -> HtmlTable:
    return HtmlTable(["type", "found in", "VERSION: supportedVersions", "what it does"],
                     tour.plugins(), "CNI_PATH = " + ":".join(tour.cni_path[1:]))


def tour_topologies(tour: Any) -> HtmlTable:
    return HtmlTable(["plugin", "the container's interface", "made in the node",
                      "routes in c1", "routes in the node", "who reaches whom"],
                     tour.topology_rows(), "two containers per plugin, each plugin in a node of its own")


def tour_nodes(tour: Any) -> HtmlTable:
    return HtmlTable(["", "netns", "address", "routes"], tour.node_rows())


def tour_ipam(tour: Any) -> HtmlTable:
    return HtmlTable(["IPAM plugin", "slide 44", "network", "container", "address", "ADD took"],
                     [[r["ipam"] + (f" ({r['origin']})" if r["origin"] else ""), r["slide"],
                       r["network"], r["container"], r["address"], f"{r['ms']:.0f} ms"]
                      for r in tour.ipam_rows_])


def tour_ipam_state(tour: Any) -> HtmlTable:
    return HtmlTable(["IPAM plugin", "its state lives in", "what it holds now"], tour.ipam_state())


def tour_multi(tour: Any) -> HtmlTable:
    return HtmlTable(["the container", "now"], tour.multi_rows())


# ---------------------------------------------------------------------------------------------
# Notebook 07b: the same container ×3 (sandbox.course.replicas)

def replica_addresses(reps: Any) -> HtmlTable:
    return HtmlTable(["", "pod", "hostname", "eth0 address", "eth0 MAC"], reps.address_rows(),
                     f"three pods of {reps.image}")


def replica_pings(reps: Any) -> HtmlTable:
    return HtmlTable(["ping", "target", "answer"], reps.ping_rows(), "asked from inside replica 1")


def replica_shared(reps: Any) -> HtmlTable:
    return HtmlTable(["", "replica 1", "replica 2", "replica 3", "the same in all three"],
                     reps.shared_rows())


def replica_writes(reps: Any) -> HtmlTable:
    return HtmlTable(["", "cat /tmp/only-mine inside it", "in its writable layer on the host"],
                     reps.write_and_look(), "replica 1 wrote /tmp/only-mine")


def replica_picture(reps: Any) -> graphviz.Digraph:
    """The node and the three replicas' network namespaces, read back with netlink."""
    from sandbox.viz.net import topology
    node, spaces = reps.nodes()
    return topology(node, spaces)


def tour_picture(tour: Any, section: str) -> graphviz.Digraph:
    """One section of 06b as the kernel sees it: a plugin's node and containers (and the LAN
    its uplink plugs into), the IPAM LAN, or the container on two networks."""
    from sandbox.viz.net import topology_from
    node, snap, spaces, roles = tour.snapshots(section)
    labels = {name: (f"LAN {name}", "host")
              for name, role in roles.items() if role == "LAN"}
    g = topology_from(snap, spaces, node_name=node, labels=labels)
    sc = tour.scenarios.get(section)
    caption = {"ipam": "three IPAM plugins on one LAN (macvlan)",
               "multi": "one container on two networks"}.get(section, section)
    if sc is not None and sc.error:
        caption += f": ADD failed ({sc.error.split(': ', 1)[-1].split('. The plugin')[0]})"
    g.attr(label=caption, labelloc="t", fontsize="16")
    return g


def tour_nodes_picture(tour: Any) -> graphviz.Digraph:
    """Section 3 of 06b: two nodes, each with its pod, and the wire between them."""
    from sandbox.viz.net import nodes_from
    a, b = (f"{s} {tour.nodes[s]}" for s in ("A", "B"))
    return nodes_from(tour.node_snapshots(), wires=[(a, "sbxwire0", b, "sbxwire0")])
