"""Pictures for rendering (ace.md §Filesystem Setup): the dependency DAG numbered in override
order, the rendered rootfs coloured by the image each path came from (with what the whitelists
removed and what was shadowed), and the clean copies executions run on."""
from __future__ import annotations

import html
from typing import Any, Iterable

import graphviz

from sandbox.render import DependencyGraph, RenderTrace, short
from sandbox.palette import kind_color
from sandbox.viz import color_for, digraph

REMOVED = "#bbbbbb"


def _order(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


def dag(graph: DependencyGraph, current: int | None = None) -> graphviz.Digraph:
    """Images as boxes (name, short ID, pathWhitelist size), an edge per listed dependency
    (labelled with its position in the list), and each box numbered with the passes in which it
    is extracted (a shared dependency gets two numbers). ``current``: the pass being extracted
    (a stepper's step), its image drawn in the "now" colour; images already extracted solid,
    the others faded."""
    layers = graph.layers()
    order = _order(l.image.name for l in layers)
    passes: dict[str, list[int]] = {}
    for l in layers:
        passes.setdefault(l.image.id, []).append(l.index)
    g = digraph("deps", rankdir="TB")
    g.attr(label="dependencies; #n = position in the override order (extracted first = #1)",
           labelloc="b", fontsize="10")
    for i, n in graph.nodes.items():
        pwl = n.manifest.path_whitelist
        lines = [f"<b>{html.escape(n.name)}</b>",
                 f"<font point-size='9'>{html.escape(short(i))}</font>",
                 f"<font point-size='10'>extracted as {', '.join('#' + str(p) for p in passes[i])}</font>"]
        if pwl:
            lines.append(f"<font point-size='9'>pathWhitelist: {len(pwl)} paths</font>")
        style: dict[str, str] = {}
        if current is not None:
            if current in passes[i]:
                style = {"color": kind_color("now"), "penwidth": "3"}
                lines.append(f"<font point-size='10'><b>extracting #{current}</b></font>")
            elif min(passes[i]) > current:
                style = {"style": "rounded,filled,dashed", "fontcolor": "#777777"}
        attrs = {"penwidth": "2" if i == graph.top else "1", "peripheries": "2" if pwl else "1"}
        attrs.update(style)
        g.node(i, "<" + "<br/>".join(lines) + ">", fillcolor=color_for(n.name, order), **attrs)
    for parent, deps in graph.edges.items():
        for pos, d in enumerate(deps, 1):
            g.edge(parent, d, label=f"dep {pos}")
    return g


def override_order(graph: DependencyGraph) -> graphviz.Digraph:
    """The flattened passes left to right: what is extracted first is overridden by what
    follows; each pass names the whitelists that filter it."""
    layers = graph.layers()
    order = _order(l.image.name for l in layers)
    g = digraph("order", rankdir="LR")
    prev = None
    for l in layers:
        wl = ", ".join(graph.nodes[i].name.split("/")[-1] for i, _ in l.whitelists)
        label = f"#{l.index} {l.image.name}" + (f"\\nfiltered by: {wl}" if wl else "")
        g.node(f"p{l.index}", label, fillcolor=color_for(l.image.name, order))
        if prev:
            g.edge(prev, f"p{l.index}", label="then")
        prev = f"p{l.index}"
    return g


def tree(trace: RenderTrace, *, show_removed: bool = True, max_children: int = 10,
         collapse: bool = True, root_label: str = "/",
         focus: set[str] | None = None) -> graphviz.Digraph:
    """The rendered rootfs as a tree, each path coloured by the image it came from. Removed
    paths (whitelist, shadowed) are grey and dashed with the reason. Directories with more than
    ``max_children`` entries show the first ones and a "+N more" box; with ``collapse``, a
    directory below the top level whose whole content comes from the image that provides most
    paths is one box ("share/ +40"). ``focus``: paths drawn in the "now" colour (what the step
    being shown did); they and their parents are never collapsed away."""
    # Long on purpose: one graphviz picture built in reading order (nodes, collapse, edges).
    focus = focus or set()
    hot = {"color": kind_color("now"), "penwidth": "2.5"}
    order = [l["name"] for l in trace.layers]
    order = _order(order)
    g = digraph("rootfs", rankdir="LR", ranksep="0.3", nodesep="0.08")
    g.attr("node", fontsize="9", height="0.2", margin="0.05,0.02")
    g.node("/", root_label, fillcolor="white")
    children: dict[str, list[str]] = {}
    for p, h in trace.paths.items():
        if h.final is None and not show_removed:
            continue
        parent = p.rsplit("/", 1)[0] or "/"
        children.setdefault(parent, []).append(p)
    shown = {"/"}
    # When a directory is cut to max_children, keep the interesting paths: those leading to a
    # file of a less common image (the bulk usually comes from one base image).
    counts: dict[str, int] = {}
    for p in trace.final_paths():
        o = trace.owner(p) or ""
        counts[o] = counts.get(o, 0) + 1
    bulk = max(counts, key=lambda o: counts[o]) if counts else ""
    minority: set[str] = set()
    for p in [*trace.final_paths(), *(f for f in focus if f in trace.paths)]:
        if trace.owner(p) != bulk or p in focus:
            while p not in ("", "/"):
                minority.add(p)
                p = p.rsplit("/", 1)[0]

    def add(parent: str) -> None:
        # in the rootfs first, leading to a less common image first, then removed paths
        kids = sorted(children.get(parent, []),
                      key=lambda k: (trace.paths[k].final is None, k not in minority, k))
        for k in kids[:max_children]:
            h = trace.paths[k]
            typ = h.kind
            name = k.rsplit("/", 1)[1] + ("/" if typ == "dir" else "")
            if typ == "symlink":
                name += " ↪"
            below = list(children.get(k, [])) if typ == "dir" else []
            if (collapse and below and parent != "/" and k not in minority
                    and h.final is not None):
                n = sum(1 for p in trace.final_paths() if p.startswith(k + "/"))
                g.node(k, f"{name} +{n}", fillcolor=color_for(trace.owner(k) or "", order),
                       tooltip=f"{n} paths, all from {bulk}", **(hot if k in focus else {}))
                g.edge(parent, k, arrowhead="none")
                continue
            if h.final is not None:
                owner = trace.owner(k) or ""
                g.node(k, name, fillcolor=color_for(owner, order), tooltip=trace.describe(k),
                       **(hot if k in focus else {}))
            else:
                why = _why_removed(trace, k)
                n = sum(1 for p in trace.paths if p.startswith(k + "/")) if below else 0
                g.node(k, f"{name}{f' +{n}' if n else ''}\\n({why})", fillcolor="white",
                       color=kind_color("now") if k in focus else REMOVED, fontcolor="#777777",
                       style="rounded,dashed", tooltip=trace.describe(k))
                g.edge(parent, k, arrowhead="none")
                shown.add(k)
                if collapse:  # a removed directory: one box for all it held
                    continue
                add(k)
                continue
            g.edge(parent, k, arrowhead="none")
            shown.add(k)
            add(k)
        if len(kids) > max_children:
            rest = kids[max_children:]
            owners = _order(trace.owner(k) or "removed" for k in rest)
            g.node(parent + "/…", f"+{len(rest)} more", shape="note", fillcolor="#f4f4f4",
                   tooltip=", ".join(owners))
            g.edge(parent, parent + "/…", arrowhead="none", style="dotted")

    add("/")
    with g.subgraph(name="cluster_legend") as lg:
        lg.attr(label="came from", fontsize="9", style="rounded", color="#cccccc")
        for n in order:
            lg.node("legend:" + n, n, fillcolor=color_for(n, order))
        if show_removed:
            lg.node("legend:removed", "removed", fillcolor="white", color=REMOVED,
                    style="rounded,dashed", fontcolor="#777777")
    return g


def _why_removed(trace: RenderTrace, path: str) -> str:
    h = trace.paths[path]
    last = h.events[-1] if h.events else None
    if last is None:
        return "removed"
    if last.kind == "filtered":
        return "whitelist of " + ", ".join(b.split("/")[-1] for b in last.by)
    if last.kind == "shadowed":
        return f"shadowed by {last.at}"
    if last.kind == "skipped":
        return "device node skipped"
    return last.kind


def removed_table(trace: RenderTrace, limit: int = 25) -> Any:
    """An HTML table of the paths a whitelist dropped (the first ``limit``): which pass offered
    it and whose list did not name it."""
    from IPython.display import HTML
    rows = []
    removed = sorted(trace.removed_by_whitelist().items())
    for p, hits in removed[:limit]:
        kept = trace.owner(p)
        for layer, by in hits:
            rows.append(f"<tr><td><code>{html.escape(p)}</code></td>"
                        f"<td>#{layer} {html.escape(trace.layer(layer)['name'])}</td>"
                        f"<td>{html.escape(', '.join(by))}</td>"
                        f"<td>{'kept from ' + html.escape(kept) if kept else 'not in the rootfs'}</td></tr>")
    more = f"<p>… and {len(removed) - limit} more paths.</p>" if len(removed) > limit else ""
    return HTML(f"<p>{len(removed)} paths were removed by a pathWhitelist.</p>"
                "<table><thead><tr><th>path</th><th>offered by pass</th><th>removed by the "
                "whitelist of</th><th>final</th></tr></thead><tbody>" + "".join(rows)
                + "</tbody></table>" + more)


def copies(tree_name: str, lower: str, runs: list[tuple[str, dict[str, str]]]) -> graphviz.Digraph:
    """One tree (read-only lower) and the executions on top of it, each with what it changed."""
    g = digraph("copies", rankdir="BT")
    if len(lower) > 70:  # a tree-store path holds a 128-hex key: keep both ends
        lower = lower[:45] + "…" + lower[-20:]
    g.node("lower", f"tree store: {tree_name}\\n{lower}\\n(read-only lower layer)",
           fillcolor="#dddddd", shape="box3d")
    colors = {"added": "#009E73", "changed": "#E69F00", "deleted": "#D55E00"}
    for i, (label, changes) in enumerate(runs):
        rows = "".join(f"<tr><td align='left'><font color='{colors.get(k, 'black')}'>{k}</font></td>"
                       f"<td align='left'>{html.escape(p)}</td></tr>" for p, k in changes.items())
        rows = rows or "<tr><td>no changes</td></tr>"
        g.node(f"run{i}", f"<<table border='0' cellspacing='0'><tr><td colspan='2'><b>"
                          f"{html.escape(label)}</b></td></tr>{rows}</table>>", fillcolor="white")
        g.edge("lower", f"run{i}", label="clean copy", dir="back")
    return g


# -- rendering and clean copies, step by step (notebook 02) --------------------------------------

def render_frame(steps: Any, k: int) -> Any:
    """The stepper's pictures for a render (states of kind ``render``): the DAG with the pass
    being extracted, and the rootfs as it stood after that pass, what the pass did outlined."""
    from sandbox.viz.stepper import Frame, last_state
    j, after = last_state(steps, k, "render")
    layer, film = after["layer"], after["film"]
    trace: RenderTrace | None = film.get("trace")
    if trace is None:
        return Frame([], note="(the render did not finish)", aside=[dag(film["graph"], current=layer)])
    now = trace.upto(layer)
    focus = trace.touched(layer) if j == k else set()
    name = trace.layer(layer)["name"]
    wrote = sum(1 for p in focus if any(e.layer == layer and e.kind in ("wrote", "overrode", "merged")
                                        for e in trace.paths[p].events))
    gone = sum(1 for p in focus if any(e.layer == layer and e.kind in ("filtered", "shadowed")
                                       for e in trace.paths[p].events))
    note = (f"<div style='color:#555;margin-bottom:4px'>pass #{layer} of {len(trace.layers)}: "
            f"{html.escape(name)} — {wrote} paths written or replaced, {gone} filtered out or "
            f"shadowed (outlined)</div>") if j == k else ""
    return Frame([tree(now, max_children=7, focus=focus, root_label=f"/ after pass #{layer}")],
                 note=note, aside=[dag(film["graph"], current=layer if j == k else None)])


def copy_frame(steps: Any, k: int) -> Any:
    """The stepper's picture for clean copies (states of kind ``copy``): the tree store's tree as
    the read-only lower layer, and each execution's copy so far (mounted, or closed with what it
    had changed, now thrown away)."""
    from sandbox.viz.stepper import Frame
    seen: dict[str, dict[str, Any]] = {}
    last: dict[str, Any] | None = None
    for i in range(k + 1):
        a = steps[i].after
        if a and a.get("kind") == "copy":
            seen[a["copy"]] = a
            last = a
    assert last is not None
    runs = []
    for n, (cid, a) in enumerate(seen.items(), 1):
        if a["event"] == "made":
            runs.append((f"execution {n} ({a['mode']}): mounted, starts clean", {}))
        else:
            runs.append((f"execution {n}: closed, its upper layer thrown away", a["changes"]))
    return Frame([copies(last["tree"], last["lower"], runs)])


def resolve_frame(steps: Any, k: int) -> Any:
    """The stepper's picture while dependencies are resolved (states of kind ``resolve``): the
    images found so far and the dependencies between them, the one being looked at outlined;
    once resolved, the DAG numbered in override order."""
    from sandbox.viz.stepper import Frame, last_state
    _, a = last_state(steps, k, "resolve")
    if a.get("graph") is not None:
        return Frame([dag(a["graph"])])
    order = list(dict.fromkeys(a["nodes"].values()))
    g = digraph("resolving", rankdir="TB")
    g.attr(label="dependencies found so far", labelloc="b", fontsize="10")
    for i, name in a["nodes"].items():
        attrs = {"penwidth": "2" if i == a["top"] else "1"}
        if i == a["current"]:
            attrs.update(color=kind_color("now"), penwidth="3")
        g.node(i, f"{name}\\n{short(i)}", fillcolor=color_for(name, order), **attrs)
    for parent, deps in a["edges"].items():
        for pos, d in enumerate(deps, 1):
            g.edge(parent, d, label=f"dep {pos}")
    if a.get("looking_for") and a["current"] in a["nodes"]:
        g.node("wanted", f"{a['looking_for']}\n(looking in the store)", style="rounded,dashed",
               color=kind_color("now"), fontcolor="#555555")
        g.edge(a["current"], "wanted", style="dashed", color=kind_color("now"),
               label=f"dep {len(a['edges'].get(a['current'], [])) + 1}")
    return Frame([g])
