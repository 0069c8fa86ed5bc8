"""The rendering pictures are valid graphviz and show what they claim."""
from __future__ import annotations

import graphviz
import pytest
from renderkit import dep

from sandbox import render
from sandbox.palette import PALETTE
from sandbox.viz import render as vr


@pytest.fixture
def graph_and_trace(mem, tmp_path):
    mem.add("d", {"/d": "d", "/dx": "d"})
    mem.add("b", {"/b": "b"}, deps=[dep("d")])
    mem.add("c", {"/c": "c", "/cx": "x"}, deps=[dep("d")], pwl=["/c", "/d"])
    a = mem.add("a", {"/a": "a"}, deps=[dep("b"), dep("c")])
    g = render.resolve(mem, a)
    return g, render.render(g, tmp_path / "out", mem.open_tar)


def test_dag_numbers_each_image_with_its_passes(graph_and_trace) -> None:
    g, _ = graph_and_trace
    src = vr.dag(g).source
    d = next(i for i, n in g.nodes.items() if n.name == "d")
    assert "extracted as #1, #3" in src and src.count(f'"{d}"') >= 1
    assert vr.dag(g).pipe(format="svg").startswith(b"<?xml")


def test_tree_colours_by_origin_and_marks_removed(graph_and_trace) -> None:
    g, trace = graph_and_trace
    src = vr.tree(trace).source
    assert "cx\\n(whitelist of c)" in src  # /cx is not in C's own list
    # /dx: removed from D's second pass by C's list, but D's first pass (via B) keeps it
    colours = {l.split()[0].strip('"'): l for l in src.splitlines() if "fillcolor" in l}
    assert f'fillcolor="{PALETTE[0]}"' in colours["/dx"]      # d's colour (first image in order)
    svg = vr.tree(trace).pipe(format="svg")
    assert svg.startswith(b"<?xml")
    assert "(whitelist of c)" not in vr.tree(trace, show_removed=False).source


def test_override_order_and_copies_render(graph_and_trace) -> None:
    g, _ = graph_and_trace
    assert vr.override_order(g).pipe(format="svg").startswith(b"<?xml")
    pic = vr.copies("a", "/lower", [("run 1", {"/x": "added"}), ("run 2", {})])
    assert isinstance(pic, graphviz.Digraph) and pic.pipe(format="svg").startswith(b"<?xml")


def test_tree_collapses_bulk_and_removed_directories(mem, tmp_path) -> None:
    mem.add("base", {**{f"/usr/share/doc/f{i}": "x" for i in range(30)},
                     **{f"/usr/lib/junk/j{i}": "j" for i in range(5)}, "/usr/bin/sh": "sh"})
    a = mem.add("app", {"/opt/app": "a", "/usr/lib/app.so": "so"}, deps=[dep("base")],
                pwl=["/opt/app", "/usr/lib/app.so", "/usr/share/doc/f1", "/usr/share/doc/f2",
                     "/usr/bin/sh"])
    trace = render.render(render.resolve(mem, a), tmp_path / "out", mem.open_tar)
    src = vr.tree(trace).source
    assert 'label="share/ +3"' in src and '"/usr/share/doc/f1"' not in src  # bulk, one box
    assert "junk/ +5\\n(whitelist of app)" in src and '"/usr/lib/junk/j0"' not in src
    assert '"/usr/lib/app.so"' in src                                      # minority stays
    full = vr.tree(trace, collapse=False).source
    assert '"/usr/share/doc/f1"' in full and '"/usr/lib/junk/j0"' in full
