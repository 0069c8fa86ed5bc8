"""The course layer: the map of the course, the slide-coverage table, the welcome notebook's
widgets, and notebook 09's side-by-side of CNM and CNI computed with the kit's own calls.

* Slide coverage: ``docs/slide-coverage.json`` maps every slide of the seed (``Slide N`` markers
  in ``../shared/seed/*.txt``) and every section of the spec excerpt at its top to the notebook
  sections that teach them; :func:`coverage_problems` says what is missing or points nowhere,
  :func:`coverage_markdown` renders ``docs/slide-coverage.md``.
* :func:`course_map` draws the notebooks in order with the labs hanging off them.
* :func:`slide_explorer` is a live widget: pick a slide, see where it is taught.
* :class:`CniCnmDemo` (notebook 09, seed slides 52–59): a node netns and two containers attached
  with CNI; CNM's *network*, *endpoint* and *sandbox* are then read off the live kernel state.
"""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphviz

from sandbox import config
from sandbox.errors import SandboxError
from sandbox.viz import color_for, digraph


class CourseError(SandboxError):
    """The course material (seed, coverage table, notebooks) is missing or inconsistent."""


# ---------------------------------------------------------------------------------------------
# The seed and the coverage table

def seed_dir(root: Path | None = None) -> Path:
    """``../shared/seed`` next to the repository (where CI puts it beside the clone)."""
    root = root or config.project_root()
    d = (root.parent / "shared" / "seed").resolve()
    if not d.is_dir() or not list(d.glob("*.txt")):
        raise CourseError(f"The slide seed is missing: expected ../shared/seed/*.txt beside the "
                          f"repository (looked in {d}); check out the shared material next to "
                          "the clone.")
    return d


def _seed_text(seed: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(seed.glob("*.txt")))


_SLIDE = re.compile(r"^Slide (\d+)$")


def seed_slides(seed: Path | None = None) -> dict[int, str]:
    """{slide number: its first line of text} from the ``Slide N`` markers of the seed."""
    lines = _seed_text(seed or seed_dir()).splitlines()
    out: dict[int, str] = {}
    for i, line in enumerate(lines):
        m = _SLIDE.match(line.strip())
        if m:
            n = int(m.group(1))
            text = [l.strip() for l in lines[i + 1:i + 4]
                    if l.strip() and l.strip() != f"Slide {n} text" and not _SLIDE.match(l.strip())]
            out[n] = text[0] if text else ""
    return out


def spec_sections(seed: Path | None = None) -> list[str]:
    """The sections of the spec excerpt that opens the seed (before the first slide): its
    untitled opening (the *app* perspective) and every ``#### Heading``."""
    text = _seed_text(seed or seed_dir())
    head = text.split("\nSlide ", 1)[0]
    out = []
    if "perspective" in head.split("####", 1)[0]:
        out.append("The app perspective")
    out += [m.group(1).strip() for m in re.finditer(r"^#{2,6} (.+)$", head, re.M)]
    return out


def coverage_path(root: Path | None = None) -> Path:
    return (root or config.project_root()) / "docs" / "slide-coverage.json"


def load_coverage(path: Path | None = None) -> dict[str, Any]:
    p = path or coverage_path()
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise CourseError(f"Cannot read the slide-coverage table {p}: {e}") from e


def notebook_headings(path: Path) -> list[str]:
    """Every markdown heading line (``# …``, ``## …``) of a notebook."""
    nb = json.loads(path.read_text())
    out = []
    for c in nb.get("cells", []):
        if c.get("cell_type") == "markdown":
            src = "".join(c.get("source", ""))
            out += [l.strip() for l in src.splitlines() if l.startswith("#")]
    return out


def coverage_problems(coverage: dict[str, Any], slides: dict[int, str], sections: list[str],
                      root: Path | None = None) -> list[str]:
    """One sentence per slide or spec section with no teaching section, and per entry that
    points at a notebook or heading that does not exist ([] = all covered)."""
    root = root or config.project_root()
    problems = []
    table = coverage.get("slides", {})
    for n in sorted(slides):
        if not table.get(str(n), {}).get("sections"):
            problems.append(f"slide {n} ({slides[n]!r}) has no notebook section")
    for s in sections:
        if not coverage.get("spec", {}).get(s):
            problems.append(f"spec section {s!r} has no notebook section")
    headings: dict[str, list[str]] = {}
    entries = [(f"slide {k}", e) for k, v in table.items() for e in v.get("sections", [])]
    entries += [(f"spec section {k!r}", e) for k, v in coverage.get("spec", {}).items() for e in v]
    for what, (nb, heading) in entries:
        p = root / nb
        if not p.is_file():
            problems.append(f"{what}: {nb} does not exist")
            continue
        if nb not in headings:
            headings[nb] = notebook_headings(p)
        if heading not in headings[nb]:
            problems.append(f"{what}: {nb} has no heading {heading!r}")
    return problems


def coverage_markdown(coverage: dict[str, Any], slides: dict[int, str] | None = None) -> str:
    """docs/slide-coverage.md, rendered from the JSON table."""
    lines = ["# Slide coverage", "",
             "Generated from `docs/slide-coverage.json` by `sandbox.viz.course.coverage_markdown` "
             "(tests/course/test_slide_coverage.py checks that every slide of the seed and every "
             "section of its spec excerpt has a section, and that this file is up to date).", "",
             "| slide | on the slide | taught in |", "|---|---|---|"]

    def where(entries: list[list[str]]) -> str:
        return "<br>".join(f"`{nb}` — {h.lstrip('#').strip()}" for nb, h in entries)

    for k, v in sorted(coverage.get("slides", {}).items(), key=lambda kv: int(kv[0])):
        title = (slides or {}).get(int(k), v.get("title", ""))
        lines.append(f"| {k} | {title.replace('|', '/')} | {where(v.get('sections', []))} |")
    lines += ["", "| spec excerpt section | taught in |", "|---|---|"]
    for k, v in coverage.get("spec", {}).items():
        lines.append(f"| {k} | {where(v)} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The course map

LAB_AFTER = {1: "01", 2: "03", 3: "02", 4: "05", 5: "06", 6: "07"}


def chapters(root: Path | None = None) -> list[tuple[str, str, Path]]:
    """(number, title, path) of every notebook in notebooks/, in order."""
    root = root or config.project_root()
    out = []
    for p in sorted((root / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        hs = [h for h in notebook_headings(p) if h.startswith("# ")]
        title = hs[0][2:].split("·", 1)[-1].strip() if hs else p.stem
        out.append((p.name[:2], title, p))
    return out


def course_map(root: Path | None = None) -> graphviz.Digraph:
    """The notebooks in order (with the slides each covers) and the labs beside them."""
    from sandbox import labs as labs_mod
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
        after = LAB_AFTER.get(lab.number)
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


# ---------------------------------------------------------------------------------------------
# Widgets and tables for the welcome notebook

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
    from sandbox import labs
    root = config.project_root()
    return _table(["lab", "what you do", "notebook", "check from a terminal"],
                  [[l.number, l.title.split("·", 1)[-1].strip(), str(l.student.relative_to(root)),
                    f"sandbox lab check {l.number}"] for l in labs.discover()])


def cli_overview() -> HTMLText:
    """The ``sandbox`` sub-commands and what each does (read from the CLI's own parser)."""
    from sandbox.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    helps = {a.dest: a.help for a in sub._choices_actions}
    return _table(["command", "what it does"], [[f"sandbox {n}", helps.get(n, "")]
                                                for n in sorted(sub.choices)])


def reset_preview() -> HTMLText:
    """What ``sandbox reset`` would remove right now (nothing is removed)."""
    from sandbox import reset
    lines = reset.plan()
    return _table(["sandbox reset would remove"], [[l] for l in lines] or [["nothing: the machine is clean"]])


# ---------------------------------------------------------------------------------------------
# Notebook 09: CNM's network / endpoint / sandbox, read off a CNI setup

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
        from sandbox import netns
        from sandbox.cni import Runtime
        from sandbox.cni_plugins import plugin_dir
        self.session = netns.Session()
        self.node = self.session.node().name
        self.tmp = self.session.tmpdir("sbx-cnm-")
        (self.tmp / "net.d").mkdir()
        self.conf = {"cniVersion": "1.0.0", "name": self.network, "type": "bridge",
                     "bridge": self.bridge, "isGateway": True,
                     "ipam": {"type": "host-local", "subnet": self.subnet}}
        (self.tmp / "net.d" / "10-cnm-demo.conf").write_text(json.dumps(self.conf, indent=2))
        for which, path in (("kit", str(plugin_dir())), ("upstream", "/usr/lib/cni")):
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
        from sandbox import netns
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

    def side_by_side(self) -> HTMLText:
        rows = self.rows()
        return _table(["CNM (libnetwork)", "on the slide", "what you did with CNI", "in the kernel now"],
                      [[r["cnm"], r["meaning"], r["cni"], r["kernel"]] for r in rows])

    def picture(self) -> graphviz.Digraph:
        """The live topology, each object labelled with the CNM term it plays."""
        from sandbox import netns
        node = netns.snapshot(self.node)
        order = ["Network", "Endpoint", "Sandbox"]
        g = digraph("cnm_cni", rankdir="LR", compound="true")
        with g.subgraph(name="cluster_node") as c:
            c.attr(label=f"node netns {self.node}", style="rounded")
            c.node("bridge", f"{self.bridge} (bridge)\\nCNM: Network", shape="box3d",
                   fillcolor=color_for("Network", order) + "55")
            for l in node["links"]:
                if l.get("kind") == "veth" and l.get("master") == self.bridge:
                    c.node(f"h{l['index']}", f"{l['name']}", fillcolor=color_for("Endpoint", order) + "55")
                    c.edge("bridge", f"h{l['index']}", arrowhead="none")
        for i, name in enumerate(self.names):
            snap = netns.snapshot(name)
            with g.subgraph(name=f"cluster_c{i}") as c:
                c.attr(label=f"{name}\\nCNM: Sandbox", style="rounded,filled",
                       fillcolor=color_for("Sandbox", order) + "33")
                for l in snap["links"]:
                    if l["name"] == "eth0":
                        addrs = ", ".join(a for a in l["addrs"] if ":" not in a)
                        c.node(f"c{i}eth0", f"eth0\\n{addrs}", fillcolor="white")
                        peer = next((h for h in node["links"] if h["index"] == l.get("peer_index")
                                     and h.get("master") == self.bridge), None)
                        if peer:
                            g.edge(f"h{peer['index']}", f"c{i}eth0", label="veth pair\\nCNM: Endpoint",
                                   dir="both", color=color_for("Endpoint", order))
        return g

    def calls(self) -> HTMLText:
        """Every plugin the runtime exec'd: a process that got env + stdin and exited."""
        rows = []
        for rt_name, rt in self.runtimes.items():
            for c in rt.calls:
                rows.append([rt_name, c.plugin, c.command, len(c.env), len(c.stdin),
                             len(c.stdout), c.exit_code, f"{c.ms:.0f}"])
        return _table(["runtime", "plugin", "CNI_COMMAND", "CNI_* env vars", "stdin bytes",
                       "stdout bytes", "exit", "ms"], rows)

    def api_comparison(self) -> HTMLText:
        n = max(len(CNI_COMMANDS), len(CNM_REMOTE_ENDPOINTS))
        rows = [[CNI_COMMANDS[i] if i < len(CNI_COMMANDS) else "",
                 CNM_REMOTE_ENDPOINTS[i] if i < len(CNM_REMOTE_ENDPOINTS) else ""] for i in range(n)]
        rows.append([f"{len(CNI_COMMANDS)} commands; an executable, run once per call, env + "
                     "stdin JSON in, stdout JSON out",
                     f"{len(CNM_REMOTE_ENDPOINTS)} endpoints; a long-running service answering "
                     "JSON over HTTP on a socket"])
        return _table(["CNI (SPEC.md §2)", "CNM remote driver (libnetwork docs/remote.md)"], rows)

    def conclusion(self) -> HTMLText:
        """The numbers behind slide 59, from this session."""
        from sandbox import netns
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
        return _table(["slide 59, measured here", "value"], rows)

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
