"""One visual language for every notebook: graphviz pictures and small widget helpers.

Each area adds its own pictures in a sibling module (``viz.image``, ``viz.net``, …) built on
:func:`digraph` and :func:`color_for`, and returns ``graphviz.Digraph`` objects: a test can read
``.source`` without running ``dot``, and Jupyter renders them as SVG.
"""
from __future__ import annotations

import hashlib

import graphviz

FONT = "Helvetica"
# A colour-blind-friendly palette (Okabe-Ito), used in order of first appearance of a key.
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999"]


def digraph(name: str = "g", *, rankdir: str = "LR", **graph_attr: str) -> graphviz.Digraph:
    """A Digraph with the kit's fonts and defaults."""
    g = graphviz.Digraph(name, format="svg")
    g.attr(rankdir=rankdir, fontname=FONT, **graph_attr)
    g.attr("node", fontname=FONT, fontsize="11", shape="box", style="rounded,filled",
           fillcolor="white")
    g.attr("edge", fontname=FONT, fontsize="9")
    return g


def color_for(key: str, order: list[str] | None = None) -> str:
    """A stable colour for ``key``: by position in ``order`` if given, else by its hash."""
    if order is not None and key in order:
        return PALETTE[order.index(key) % len(PALETTE)]
    return PALETTE[int(hashlib.sha1(key.encode()).hexdigest(), 16) % len(PALETTE)]
