"""Pictures for discovery and fetch: the parent-path walk, template expansion, and the fetch
conversation drawn as a sequence diagram from recorded :class:`sandbox.steps.Steps`."""
from __future__ import annotations

import html
from urllib.parse import urlsplit

import graphviz

from sandbox.dist.discovery import Discovery
from sandbox.steps import Steps
from sandbox.viz import PALETTE, digraph, sequence

OK, SKIP, WEAK, BAD = "#009E73", "#999999", "#E69F00", "#D55E00"


def _short(url: str, keep: int = 60) -> str:
    return url if len(url) <= keep else url[: keep // 2 - 1] + "…" + url[-keep // 2:]


def walk(d: Discovery) -> graphviz.Digraph:
    """Each discovery URL tried, in order, with its answer (parent-path retry, http fallback)."""
    g = digraph("walk", rankdir="TB")
    g.node("app", f"{d.app}", shape="box", style="rounded,filled", fillcolor="#eeeeee")
    prev = "app"
    for i, a in enumerate(d.attempts):
        color = OK if a.ok and d.prefix == a.prefix else (WEAK if a.ok else BAD)
        answer = "200 OK" if a.ok else (a.error or str(a.status))
        if a.ok and d.prefix != a.prefix:
            answer += ", no matching tag"
        g.node(f"a{i}", f"{_short(a.url)}\n{answer}", color=color, penwidth="2")
        g.edge(prev, f"a{i}", label="https first" if i == 0 else
               ("http fallback" if a.url.startswith("http:") and d.attempts[i - 1].prefix == a.prefix
                else "parent path"))
        prev = f"a{i}"
    return g


def templates(d: Discovery) -> graphviz.Digraph:
    """The variables, every ac-discovery template that matched the prefix, and its fate."""
    g = digraph("templates", rankdir="LR")
    rows = "".join(f"<tr><td align='left'>{{{html.escape(k)}}}</td><td align='left'>{html.escape(v)}</td></tr>"
                   for k, v in d.variables.items())
    g.node("vars", f"<<table border='0' cellspacing='0' cellborder='1'><tr><td colspan='2'><b>variables</b>"
                   f"</td></tr>{rows}<tr><td>{{ext}}</td><td>aci | aci.asc</td></tr></table>>",
           shape="plain")
    for i, c in enumerate(d.candidates):
        color = OK if c.best else (WEAK if c.endpoint else SKIP)
        g.node(f"t{i}", html.escape(c.template), shape="note", color=color)
        g.edge("vars", f"t{i}")
        result = c.endpoint.aci if c.endpoint else c.rendered
        g.node(f"r{i}", f"{_short(result, 80)}\n({c.reason}; {len(c.labels_used)} labels)",
               color=color, fontcolor=color if not c.best else "black", penwidth="2" if c.best else "1")
        g.edge(f"t{i}", f"r{i}", color=color)
    return g


def fetch_sequence(steps: Steps, *, title: str = "sandbox fetch") -> graphviz.Digraph:
    """A sequence diagram of a fetch: one lifeline per party (the client, each server seen,
    the trust store, the image store); one row per request, cache decision or check."""
    rows: list[tuple[str, str, str, str, str]] = []   # (from, to, label, color, style)
    client = title
    for s in steps:
        det = s.detail
        if s.action == "http":
            host = urlsplit(s.what).netloc
            u = urlsplit(s.what)
            path = u.path + (f"?{u.query}" if u.query else "")
            rows.append((client, host, f"GET {_short(path, 48)}", "black", "solid"))
            st = det.get("status")
            color = OK if st == 200 else (WEAK if st in (301, 302, 303, 307, 308, 304) else BAD)
            label = f"{st}" + (f" → {_short(det['location'], 40)}" if det.get("location") else "")
            if det.get("error"):
                label = f"{st}: {_short(str(det['error']), 50)}"
            rows.append((host, client, label, color, "dashed"))
        elif s.action == "cache":
            rows.append((client, client, f"cache: {det.get('result')}", PALETTE[1], "dotted"))
        elif s.action == "check" and s.what == "signer trusted":
            rows.append((client, "trust store", f"who signed? {str(det.get('key') or det.get('issuer'))[-16:]}",
                         "black", "solid"))
            rows.append(("trust store", client, "trusted" if det.get("ok") else "NOT trusted: stop",
                         OK if det.get("ok") else BAD, "dashed"))
        elif s.action == "verify":
            rows.append((client, "trust store", "verify signature over the bytes served", "black", "solid"))
            rows.append(("trust store", client, "good signature", OK, "dashed"))
        elif s.action == "check" and s.what.startswith(("manifest name", "label ")):
            ok = det.get("ok")
            rows.append((client, client, "name + labels match" if ok else f"MISMATCH: {s.what}",
                         OK if ok else BAD, "dotted"))
        elif s.action == "import":
            rows.append((client, "image store", "import", "black", "solid"))
            rows.append(("image store", client, s.what[:23] + "…", OK, "dashed"))
    parties: list[str] = [client]
    for a, b, *_ in rows:
        for p in (a, b):
            if p not in parties:
                parties.append(p)
    return sequence(parties, rows)


def template_explorer(tags: list, app: str = "example.com/myapp:1.0.0,os=linux,arch=amd64"):
    """A text box for an app string and the live template picture for ``tags`` (meta tags).

    Type ``example.com/myapp,channel=beta`` or drop the version and watch templates change fate.
    """
    import ipywidgets as w
    from IPython.display import display

    from sandbox.dist.discovery import Discovery, expand_templates, parse_app
    from sandbox.errors import SandboxError

    box = w.Text(value=app, description="app string", layout=w.Layout(width="60%"),
                 continuous_update=False)
    out = w.Output()

    def show(*_: object) -> None:
        out.clear_output()
        with out:
            try:
                a = parse_app(box.value)
            except SandboxError as e:
                print(e)
                return
            display(templates(Discovery(a, candidates=expand_templates(a, tags))))

    box.observe(show, names="value")
    show()
    return w.VBox([box, out])
