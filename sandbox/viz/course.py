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
from sandbox.course.cnm_demo import CNI_COMMANDS, CNM_REMOTE_ENDPOINTS, CniCnmDemo
from sandbox.course.slides import (
    CourseError,
    chapters,
    coverage_path,
    load_coverage,
)
from sandbox.viz import color_for, digraph


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
# Notebook 09: CNM's network / endpoint / sandbox, read off a CNI setup (sandbox.course.cnm_demo)

def cnm_side_by_side(demo: CniCnmDemo) -> HTMLText:
    rows = demo.rows()
    return _table(["CNM (libnetwork)", "on the slide", "what you did with CNI", "in the kernel now"],
                  [[r["cnm"], r["meaning"], r["cni"], r["kernel"]] for r in rows])


def cnm_picture(demo: CniCnmDemo) -> graphviz.Digraph:
    """The live topology, each object labelled with the CNM term it plays."""
    from sandbox.net import netns
    node = netns.snapshot(demo.node)
    order = ["Network", "Endpoint", "Sandbox"]
    g = digraph("cnm_cni", rankdir="LR", compound="true")
    with g.subgraph(name="cluster_node") as c:
        c.attr(label=f"node netns {demo.node}", style="rounded")
        c.node("bridge", f"{demo.bridge} (bridge)\\nCNM: Network", shape="box3d",
               fillcolor=color_for("Network", order) + "55")
        for l in node["links"]:
            if l.get("kind") == "veth" and l.get("master") == demo.bridge:
                c.node(f"h{l['index']}", f"{l['name']}", fillcolor=color_for("Endpoint", order) + "55")
                c.edge("bridge", f"h{l['index']}", arrowhead="none")
    for i, name in enumerate(demo.names):
        snap = netns.snapshot(name)
        with g.subgraph(name=f"cluster_c{i}") as c:
            c.attr(label=f"{name}\\nCNM: Sandbox", style="rounded,filled",
                   fillcolor=color_for("Sandbox", order) + "33")
            for l in snap["links"]:
                if l["name"] == "eth0":
                    addrs = ", ".join(a for a in l["addrs"] if ":" not in a)
                    c.node(f"c{i}eth0", f"eth0\\n{addrs}", fillcolor="white")
                    peer = next((h for h in node["links"] if h["index"] == l.get("peer_index")
                                 and h.get("master") == demo.bridge), None)
                    if peer:
                        g.edge(f"h{peer['index']}", f"c{i}eth0", label="veth pair\\nCNM: Endpoint",
                               dir="both", color=color_for("Endpoint", order))
    return g


def cnm_calls(demo: CniCnmDemo) -> HTMLText:
    """Every plugin the runtime exec'd: a process that got env + stdin and exited."""
    return _table(["runtime", "plugin", "CNI_COMMAND", "CNI_* env vars", "stdin bytes",
                   "stdout bytes", "exit", "ms"], demo.call_rows())


def cnm_api_comparison() -> HTMLText:
    n = max(len(CNI_COMMANDS), len(CNM_REMOTE_ENDPOINTS))
    rows = [[CNI_COMMANDS[i] if i < len(CNI_COMMANDS) else "",
             CNM_REMOTE_ENDPOINTS[i] if i < len(CNM_REMOTE_ENDPOINTS) else ""] for i in range(n)]
    rows.append([f"{len(CNI_COMMANDS)} commands; an executable, run once per call, env + "
                 "stdin JSON in, stdout JSON out",
                 f"{len(CNM_REMOTE_ENDPOINTS)} endpoints; a long-running service answering "
                 "JSON over HTTP on a socket"])
    return _table(["CNI (SPEC.md §2)", "CNM remote driver (libnetwork docs/remote.md)"], rows)


def cnm_conclusion(demo: CniCnmDemo) -> HTMLText:
    """The numbers behind slide 59, from this session."""
    return _table(["slide 59, measured here", "value"], demo.conclusion_rows())
