"""The kit's colours: one visual language for every picture and table (the same colour means the
same kind of object in every notebook). :mod:`sandbox.viz` draws with it; objects below viz that
show themselves as HTML in a notebook (``_repr_html_``) colour with it too.
"""
from __future__ import annotations

import hashlib

# A colour-blind-friendly palette (Okabe-Ito), used in order of first appearance of a key.
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999"]


def color_for(key: str, order: list[str] | None = None) -> str:
    """A stable colour for ``key``: by position in ``order`` if given, else by its hash."""
    if order is not None and key in order:
        return PALETTE[order.index(key) % len(PALETTE)]
    return PALETTE[int(hashlib.sha1(key.encode()).hexdigest(), 16) % len(PALETTE)]


# What a verdict looks like everywhere (lab reports, doctor, quizzes, progress).
STATUS = {"ok": "#009E73", "bad": "#D55E00", "info": "#0072B2", "muted": "#999999",
          "warn": "#E69F00", "new": "#EE3377"}
