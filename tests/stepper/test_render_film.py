"""A render replayed pass by pass: the trace cut after pass k (``RenderTrace.upto``) is what is
on disk when only passes 1…k are extracted — checked by really extracting them (each image's
files hold its own name, so the disk says who wrote what)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "render"))
from renderkit import MemSource, dep, snapshot  # noqa: E402

from sandbox import render  # noqa: E402
from sandbox.palette import kind_color  # noqa: E402
from sandbox.steps import Steps  # noqa: E402
from sandbox.viz.stepper import Stepper, frame_of  # noqa: E402


@pytest.fixture
def graph():
    """The spec's A→[B,C], B→[D], C→[D] with overlapping files, a whitelist on C, a file that
    shadows a directory."""
    mem = MemSource()
    mem.add("d", {"/d": "d", "/shared": "d", "/dir/x": "d", "/kept": "d"})
    mem.add("b", {"/b": "b", "/shared": "b"}, deps=[dep("d")])
    mem.add("c", {"/c": "c", "/shared": "c", "/kept": "c"}, deps=[dep("d")], pwl=["/c", "/d", "/shared"])
    a = mem.add("a", {"/a": "a", "/dir": "a"}, deps=[dep("b"), dep("c")])
    return mem, render.resolve(mem, a)


def _owners_on_disk(root: Path) -> dict[str, str]:
    return {p: v[1].decode() for p, v in snapshot(root).items() if v[0] == "file"}


def test_each_pass_is_what_extracting_the_first_passes_leaves(graph, tmp_path: Path, monkeypatch) -> None:
    mem, g = graph
    steps = Steps(snapshots=True)
    trace = render.render(g, tmp_path / "all", mem.open_tar, steps=steps)
    passes = [s for s in steps if s.after and s.after.get("kind") == "render"]
    layers = g.layers()
    assert [s.after["layer"] for s in passes] == [l.index for l in layers] == [1, 2, 3, 4, 5]
    assert all(s.after["film"]["trace"] is trace for s in passes)
    names = {l["index"]: l["name"].split("/")[-1] for l in trace.layers}
    for k in range(1, len(layers) + 1):
        monkeypatch.setattr(type(g), "layers", lambda self, _k=k: layers[:_k])
        partial = render.render(g, tmp_path / f"upto-{k}", mem.open_tar)
        monkeypatch.undo()
        disk = _owners_on_disk(tmp_path / f"upto-{k}")
        view = trace.upto(k)
        shown = {p: names[h.final] for p, h in view.paths.items()
                 if h.final is not None and h.type == "file"}
        assert shown == disk, f"after pass {k}"
        assert {p: h.final for p, h in partial.paths.items()} == \
            {p: h.final for p, h in view.paths.items()}


def test_the_pictures_mark_the_pass_and_what_it_did(graph, tmp_path: Path) -> None:
    mem, g = graph
    steps = Steps(snapshots=True)
    trace = render.render(g, tmp_path / "r", mem.open_tar, steps=steps)
    k = next(i for i, s in enumerate(steps) if s.after and s.after["layer"] == 4)   # c: filtered
    fr = frame_of(steps, k)
    src, dag = fr.pictures[0].source, fr.aside[0].source
    assert "extracting #4" in dag and kind_color("now") in dag
    assert "/ after pass #4" in src and "whitelist of c" in src and kind_color("now") in src
    assert "/a" not in src                        # pass 5 has not happened yet
    assert trace.touched(4) == {"/c", "/shared", "/kept"}        # C wrote two, its list cut one
    assert Stepper(steps, static=True).static_html().count("<svg") >= len(steps)


@pytest.mark.root
def test_clean_copies_are_filmed_with_what_each_changed(tmp_path: Path, monkeypatch) -> None:
    """Two clean copies of a rendered tree: made (empty upper), then closed with the changes read
    from the upper layer before it is thrown away."""
    monkeypatch.setenv("SANDBOX_DIR", str(tmp_path / "state"))
    from renderkit import StoreBuilder

    from sandbox.render import treestore
    (tmp_path / "acis").mkdir()
    sb = StoreBuilder(tmp_path / "acis")
    img = sb.add("example.com/sbx-st-copy", {"/etc/motd": "hi"})
    tree = treestore.render_image(sb.store, img)
    steps = Steps(snapshots=True)
    for n in (1, 2):
        with treestore.clean_copy(tree, steps=steps) as copy:
            (copy.path / "etc" / "motd").write_text(f"run {n}")
            (copy.path / f"new-{n}").write_text("x")
    states = [s.after for s in steps if s.after]
    assert [s["event"] for s in states] == ["made", "closed", "made", "closed"]
    assert states[1]["changes"] == {"/etc/motd": "changed", "/new-1": "added"}
    assert states[3]["changes"] == {"/etc/motd": "changed", "/new-2": "added"}
    src = frame_of(steps, len(steps) - 1).pictures[0].source
    assert src.count("closed, its upper layer thrown away") == 2 and "/new-2" in src
    treestore.close_all()


def test_resolving_draws_the_graph_as_it_is_found(graph) -> None:
    mem, g = graph
    steps = Steps(snapshots=True)
    render.resolve(mem, g.top, steps=steps)
    states = [s.after for s in steps]
    assert all(s["kind"] == "resolve" for s in states)
    known = [len(s["nodes"]) for s in states]
    assert known == sorted(known) and known[0] == 1 and known[-1] == 4
    assert states[-1]["graph"].order_names() == g.order_names()
    sources = [frame_of(steps, k).pictures[0].source for k in range(len(steps))]
    assert kind_color("now") in sources[0] and "extracted as #2, #4" not in sources[0]
    assert "extracted as" in sources[-1]                  # the resolved DAG, numbered
