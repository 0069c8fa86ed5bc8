"""The kit's colours: one visual language for every picture and table (the same colour means the
same kind of object in every notebook). :mod:`sandbox.viz` draws with it; objects below viz that
show themselves as HTML in a notebook (``_repr_html_``) colour with it too.

Two families, never mixed:

* **kinds** (:data:`KINDS`, :func:`kind_color`): one strong colour per kind of object, the same
  in every notebook — a network namespace is always sky blue, a veth always blue, a key always
  purple. Notebooks show the legend with :func:`legend`.
* **instances** (:data:`PALETTE`, :func:`color_for`): light colours that tell several objects of
  one kind apart — the images of a render, the apps of a pod — in order of first appearance.
  No kind uses them.
"""
from __future__ import annotations

import hashlib
from collections import namedtuple

# What a verdict looks like everywhere (lab reports, doctor, quizzes, progress).
STATUS = {"ok": "#009E73", "bad": "#D55E00", "info": "#0072B2", "muted": "#999999",
          "warn": "#E69F00", "new": "#EE3377"}

Kind = namedtuple("Kind", "color label")

#: kind -> (colour, what it means). Defined once; every picture of the kit takes its colours here.
KINDS: dict[str, Kind] = {
    # processes and namespaces (05, 06, 07)
    "host": Kind("#BBBBBB", "the host: this machine's own namespaces and processes"),
    "node": Kind("#E69F00", "a node netns: plays the host for CNI (bridge, NAT)"),
    "netns": Kind("#56B4E9", "a container's or pod's namespace"),
    "process": Kind("#F0E442", "a process or thread"),
    "mount": Kind("#882255", "a mount: bind-mounted handle, overlay, pivot_root"),
    # networking (05, 06, 07)
    "bridge": Kind("#117733", "a bridge"),
    "veth": Kind("#0072B2", "a veth pair"),
    "nat": Kind("#CC6677", "iptables NAT rules"),
    "plugin": Kind("#999933", "a CNI plugin exec"),
    "file": Kind("#777777", "a file the runtime or a plugin wrote"),
    # images, hashes and signatures (01, 02, 03)
    "hashed": Kind("#44AA99", "bytes a hash covers"),
    "signed": Kind("#AA4499", "bytes the signature covers"),
    "trailer": Kind("#332288", "the signature trailer"),
    "key": Kind("#CC79A7", "a key (and what it made: the signature value)"),
    "unhashed": Kind("#DDDDDD", "carried along, covered by nothing"),
    "removed": Kind("#EEEEEE", "removed: overwritten, shadowed, filtered (drawn dashed)"),
    # verdicts
    "ok": Kind(STATUS["ok"], "accepted / passed"),
    "refused": Kind(STATUS["bad"], "refused / broken"),
    # the step being shown
    "now": Kind(STATUS["new"], "what the current step changed"),
}

# Instances: light colours (mostly Paul Tol's "light" set), used in order of first appearance
# of a key. None is close to a kind's colour (a test measures it).
PALETTE = ["#EE8866", "#BBCC33", "#FFAABB", "#CCBBEE", "#EEDD88", "#99DDFF", "#AAAA00", "#77AADD"]


def kind_color(kind: str) -> str:
    """The colour of a kind of object (KeyError names the kinds that exist)."""
    try:
        return KINDS[kind].color
    except KeyError as e:
        raise KeyError(f"no colour for kind {kind!r}; kinds: {', '.join(KINDS)}") from e


def color_for(key: str, order: list[str] | None = None) -> str:
    """A stable instance colour for ``key``: by position in ``order`` if given, else by its hash."""
    if order is not None and key in order:
        return PALETTE[order.index(key) % len(PALETTE)]
    return PALETTE[int(hashlib.sha1(key.encode()).hexdigest(), 16) % len(PALETTE)]


def legend(*kinds: str) -> str:
    """A one-line HTML legend of ``kinds`` (all kinds when none is named)."""
    import html
    chips = []
    for k in kinds or tuple(KINDS):
        c, label = KINDS[k]
        chips.append(f"<span style='display:inline-block;margin:0 10px 2px 0;white-space:nowrap'>"
                     f"<span style='display:inline-block;width:11px;height:11px;background:{c};"
                     f"border:1px solid #555;vertical-align:middle;margin-right:4px'></span>"
                     f"<b>{html.escape(k)}</b>: {html.escape(label)}</span>")
    return f"<div class='sbx-legend' style='font-size:12px'>{''.join(chips)}</div>"
