"""Tables for the CLI that fit the terminal without cutting a word off.

A table wider than the terminal wraps the cells of the columns its caller lets wrap, each at
its own break characters (``reduce-worker(0),worker-backup(0)`` becomes two lines in the APPS
column, broken after the comma) instead of truncating them: a learner copies names and addresses out of these tables, and a name cut at
40 characters silently names something else. A single word longer than its column is kept
whole, and a table that cannot fit even so is not wrapped at all (the terminal folds its
lines). Output to a pipe or a file is not wrapped
unless ``$COLUMNS`` says how wide it may be (``grep`` sees one line per row).
"""
from __future__ import annotations

import os
import re
import sys


def terminal_width() -> int | None:
    """$COLUMNS, else the width of the terminal on stdout, else None (no limit)."""
    try:
        cols = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        cols = 0
    if cols > 0:
        return cols
    try:
        if sys.stdout.isatty():
            return os.get_terminal_size(sys.stdout.fileno()).columns
    except (AttributeError, ValueError, OSError):
        pass
    return None


def _pieces(text: str, breaks: str) -> list[str]:
    """``text`` cut after each of the characters in ``breaks``."""
    if not breaks:
        return [text]
    return [p for p in re.split(f"(?<=[{re.escape(breaks)}])", text) if p]


def wrap_cell(text: str, width: int, breaks: str = ", ") -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken only after one of ``breaks``;
    a piece longer than ``width`` stays whole on a line of its own."""
    lines: list[str] = []
    line = ""
    for piece in _pieces(text, breaks):
        if line and len(line) + len(piece.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
    lines.append(line.rstrip())
    return lines


def table(headers: list[str], rows: list[list[str]], wrap: dict[int, str] | None = None,
          width: int | None = None, gap: str = "  ") -> str:
    """``rows`` under ``headers`` in aligned columns, at most ``width`` characters a line
    (default: :func:`terminal_width`) where wrapping the columns in ``wrap`` (column index →
    the characters it may break after) can make it so; other columns keep their width."""
    wrap = wrap or {}
    if width is None:
        width = terminal_width()
    cols = len(headers)
    cells = [list(headers)] + [[str(c) for c in r] for r in rows]
    natural = [max(len(r[c]) for r in cells) for c in range(cols)]
    # the narrowest each column can be: its longest unbreakable piece (and its header)
    least = [max([len(headers[c])] + [len(p.rstrip()) for r in cells[1:]
                                      for p in _pieces(r[c], wrap[c])])
             if c in wrap else natural[c] for c in range(cols)]
    widths = list(natural)
    # wrapping helps only if the table then fits: otherwise every row stays on one line
    if width is not None and sum(least) + len(gap) * (cols - 1) <= width:
        total = lambda: sum(widths) + len(gap) * (cols - 1)  # noqa: E731
        while total() > width:
            # shrink the column with the most room to give, one character at a time
            c = max(range(cols), key=lambda i: widths[i] - least[i])
            if widths[c] <= least[c]:
                break                     # nothing left to wrap: the line stays wider
            widths[c] -= min(widths[c] - least[c], total() - width)
    out = []
    for r in cells:
        parts = [wrap_cell(r[c], widths[c], wrap.get(c, "")) if len(r[c]) > widths[c] else [r[c]]
                 for c in range(cols)]
        for i in range(max(len(p) for p in parts)):
            line = gap.join((p[i] if i < len(p) else "").ljust(widths[c])
                            for c, p in enumerate(parts))
            out.append(line.rstrip())
    return "\n".join(out)
