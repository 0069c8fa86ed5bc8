"""One visual language: every kind has its own colour, far enough from the others (and from the
instance colours that tell images and apps apart) to be told apart in one picture."""
from __future__ import annotations

from sandbox.palette import KINDS, PALETTE, STATUS, kind_color, legend


def _distance(a: str, b: str) -> float:
    ra, rb = (tuple(int(h[i:i + 2], 16) for i in (1, 3, 5)) for h in (a, b))
    return sum((x - y) ** 2 for x, y in zip(ra, rb)) ** 0.5


# pairs that never share a picture (and are told apart by their line style anyway)
NEVER_TOGETHER = {frozenset({"unhashed", "removed"})}


def test_kinds_are_far_apart_and_verdicts_are_the_status_colours() -> None:
    items = list(KINDS.items())
    close = [(a, b) for i, (a, ka) in enumerate(items) for b, kb in items[i + 1:]
             if _distance(ka.color, kb.color) < 45 and frozenset({a, b}) not in NEVER_TOGETHER]
    assert close == []
    assert (kind_color("ok"), kind_color("refused"), kind_color("now")) == \
        (STATUS["ok"], STATUS["bad"], STATUS["new"])


def test_instance_colours_are_not_kinds_that_share_their_pictures() -> None:
    # images and apps are drawn with namespaces, processes, mounts and removed paths
    for kind in ("host", "node", "process", "mount", "removed", "bridge", "veth"):
        assert all(_distance(kind_color(kind), c) >= 45 for c in PALETTE), kind
    # the first seven instances stay clear of the namespace colour too
    assert all(_distance(kind_color("netns"), c) >= 45 for c in PALETTE[:7])


def test_legend_names_each_kind_with_its_colour() -> None:
    html = legend("netns", "veth")
    assert kind_color("netns") in html and kind_color("veth") in html and "bridge" not in html
