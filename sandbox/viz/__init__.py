"""One visual language for every notebook: graphviz pictures and small widget helpers.

Each area adds its own pictures in a sibling module (``viz.image``, ``viz.net``, …) built on
:func:`digraph` and :func:`color_for`, and returns ``graphviz.Digraph`` objects: a test can read
``.source`` without running ``dot``, and Jupyter renders them as SVG.
"""
from __future__ import annotations

import html
import os
from typing import Any

import graphviz

from sandbox.palette import PALETTE, color_for  # noqa: F401 - the viz modules draw with them

FONT = "Helvetica"


def digraph(name: str = "g", *, rankdir: str = "LR", **graph_attr: str) -> graphviz.Digraph:
    """A Digraph with the kit's fonts and defaults."""
    g = graphviz.Digraph(name, format="svg")
    g.attr(rankdir=rankdir, fontname=FONT, **graph_attr)
    g.attr("node", fontname=FONT, fontsize="11", shape="box", style="rounded,filled",
           fillcolor="white")
    g.attr("edge", fontname=FONT, fontsize="9")
    return g



def static_mode() -> bool:
    """True when pages are built for reading without a kernel (``SANDBOX_STATIC=1``, set by
    ``make site``): widgets that need a kernel to answer show static HTML instead."""
    return bool(os.environ.get("SANDBOX_STATIC"))


def _esc(s: Any) -> str:
    return html.escape(str(s))


class HtmlTable:
    """A small HTML table that Jupyter renders (and ``str()`` shows as text)."""

    def __init__(self, header: list[str], rows: list[list[Any]], title: str = "") -> None:
        self.header, self.rows, self.title = header, rows, title

    def __str__(self) -> str:
        return "\n".join([self.title, " | ".join(self.header)]
                         + [" | ".join(str(c) for c in r) for r in self.rows])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        def cell(v: Any) -> str:
            if isinstance(v, bool):
                return "✔" if v else "✘"
            return f"<pre style='margin:0'>{_esc(v)}</pre>" if "\n" in str(v) else _esc(v)
        head = "".join(f"<th>{_esc(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td style='text-align:left;vertical-align:top'>"
                                        f"{cell(c)}</td>" for c in r) + "</tr>" for r in self.rows)
        cap = f"<caption>{_esc(self.title)}</caption>" if self.title else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def rows_table(rows: list[dict[str, Any]], title: str = "") -> HtmlTable:
    """A list of dicts (e.g. :func:`sandbox.pod.perspective.namespace_table`) as a table."""
    header = list(rows[0]) if rows else []
    return HtmlTable(header, [[r.get(h, "") for h in header] for r in rows], title)
