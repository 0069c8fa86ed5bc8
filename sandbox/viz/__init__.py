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


class Svg(str):
    """An SVG picture drawn by hand (not by graphviz): Jupyter shows it; ``.source`` is the text."""

    def _repr_svg_(self) -> str:
        return str(self)

    @property
    def source(self) -> str:
        return str(self)


def sequence(parties: list[str], rows: list[tuple[str, ...]], *,
             fills: dict[str, str] | None = None, current: int | None = None,
             earlier: int = 0) -> Svg:
    """A sequence diagram: one lifeline per party, one row per message, drawn as SVG (straight
    arrows, each label centred above its arrow).

    ``rows``: (from, to, label, colour, style) with style solid | dashed | dotted; ``from == to``
    is a note on that lifeline. ``fills``: a header colour per party (default: the instance
    palette in order); ``current``: the row drawn bold on a highlight (the step being shown);
    ``earlier``: rows left out above (shown as "⋮ N earlier")."""
    char, row_h, head_h, pad = 6.1, 24, 30, 12
    n = len(parties)
    # each gap between neighbouring lanes is as wide as the longest label that must fit in it
    gaps = [90.0] * max(n - 1, 1)
    for a, b, label, *_ in rows:
        ja, jb = sorted((parties.index(a), parties.index(b)))
        need = len(label) * char + 16
        if ja == jb:
            j = min(ja, n - 2)
            gaps[j] = max(gaps[j], need / 1.6 if ja < n - 1 else gaps[j])
        else:
            per = need / (jb - ja)
            for j in range(ja, jb):
                gaps[j] = max(gaps[j], per)
    head_w = [max(70.0, len(p) * 7.2 + 20) for p in parties]
    xs = [pad + head_w[0] / 2]
    for j in range(1, n):
        xs.append(xs[-1] + max(gaps[j - 1], (head_w[j - 1] + head_w[j]) / 2 + 10))
    last_note = max((len(r[2]) * char + 14 for r in rows if r[0] == r[1] == parties[-1]), default=0)
    width = xs[-1] + max(head_w[-1] / 2, last_note) + pad
    top = head_h + 16 + (14 if earlier else 0)
    height = top + row_h * len(rows) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica,Arial,sans-serif" '
           f'font-size="11">']
    if current is not None and 0 <= current < len(rows):
        y = top + row_h * current
        out.append(f'<rect x="0" y="{y - row_h + 6}" width="{width:.0f}" height="{row_h}" '
                   f'fill="#EE3377" fill-opacity="0.10"/>')
    for j, p in enumerate(parties):
        fill = (fills or {}).get(p) or PALETTE[j % len(PALETTE)]
        x = xs[j]
        out.append(f'<line x1="{x:.1f}" y1="{head_h + 4}" x2="{x:.1f}" y2="{height - 4:.0f}" '
                   f'stroke="#bbbbbb" stroke-dasharray="4,3"/>')
        out.append(f'<rect x="{x - head_w[j] / 2:.1f}" y="4" width="{head_w[j]:.1f}" height="{head_h - 6}" '
                   f'rx="6" fill="{fill}" fill-opacity="0.55" stroke="#333333"/>')
        out.append(f'<text x="{x:.1f}" y="{head_h / 2 + 5:.1f}" text-anchor="middle" '
                   f'font-size="12">{_esc(p)}</text>')
    if earlier:
        out.append(f'<text x="{pad}" y="{head_h + 14}" fill="#777777" font-size="10">'
                   f'⋮ {earlier} earlier rows not shown</text>')
    dash = {"dashed": ' stroke-dasharray="6,3"', "dotted": ' stroke-dasharray="2,2"'}
    for i, (a, b, label, color, style) in enumerate(rows):
        y = top + row_h * i
        bold = i == current
        weight = ' font-weight="bold"' if bold else ""
        sw = 2.4 if bold else 1.2
        ja, jb = parties.index(a), parties.index(b)
        if ja == jb:
            x = xs[ja]
            left = ja == n - 1 and ja > 0
            out.append(f'<circle cx="{x:.1f}" cy="{y - 4}" r="{4 if bold else 3}" fill="white" '
                       f'stroke="{color}" stroke-width="{sw}"/>')
            anchor = ' text-anchor="end"' if left else ""
            out.append(f'<text x="{x + (-8 if left else 8):.1f}" y="{y}" fill="{color}"'
                       f'{anchor}{weight}>{_esc(label)}</text>')
            continue
        x1, x2 = xs[ja], xs[jb]
        head = -7 if x2 > x1 else 7
        out.append(f'<line x1="{x1:.1f}" y1="{y}" x2="{x2 + head:.1f}" y2="{y}" stroke="{color}" '
                   f'stroke-width="{sw}"{dash.get(style, "")}/>')
        out.append(f'<polygon points="{x2:.1f},{y} {x2 + head:.1f},{y - 4} {x2 + head:.1f},{y + 4}" '
                   f'fill="{color}"/>')
        out.append(f'<text x="{(x1 + x2) / 2:.1f}" y="{y - 5}" text-anchor="middle" '
                   f'fill="{color}"{weight}>{_esc(label)}</text>')
    out.append("</svg>")
    return Svg("\n".join(out))


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
