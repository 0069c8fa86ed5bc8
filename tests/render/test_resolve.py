"""Dependency resolution and the override order (ace.md §Filesystem Setup examples; aci.md
§Dependency Matching)."""
from __future__ import annotations

import pytest
from renderkit import dep

from sandbox import render


def test_spec_example_tree_order(mem) -> None:
    # ace.md: A -> [B, C], C -> [D]: "The order of override is: B, D, C, A."
    mem.add("b"); mem.add("d"); mem.add("c", deps=[dep("d")])
    a = mem.add("a", deps=[dep("b"), dep("c")])
    g = render.resolve(mem, a)
    assert g.order_names() == ["b", "d", "c", "a"]
    assert [l.image.name for l in g.layers()] == ["b", "d", "c", "a"]
    assert [len(l.chain) for l in g.layers()] == [2, 3, 2, 1]


def test_spec_example_dag_order_visits_shared_dependency_twice(mem) -> None:
    # ace.md: A -> [B, C], B -> [D], C -> [D]: "The order of override is: D, B, D, C, A."
    d = mem.add("d")
    mem.add("b", deps=[dep("d")]); mem.add("c", deps=[dep("d")])
    a = mem.add("a", deps=[dep("b"), dep("c")])
    g = render.resolve(mem, a)
    assert g.order_names() == ["d", "b", "d", "c", "a"]
    layers = g.layers()
    # the two passes over D carry different chains (so different whitelists apply)
    assert layers[0].image.id == layers[2].image.id == d
    names = lambda l: [g.nodes[i].name for i in l.chain]  # noqa: E731
    assert names(layers[0]) == ["a", "b", "d"] and names(layers[2]) == ["a", "c", "d"]
    assert len(g.nodes) == 4  # D resolved once


def test_dependencies_matched_by_name_and_labels(mem) -> None:
    old = mem.add("base", {"/v": "1"}, labels={"version": "1", "arch": "amd64"})
    new = mem.add("base", {"/v": "2"}, labels={"version": "2", "arch": "amd64"})
    a1 = mem.add("app", deps=[dep("base", {"version": "1"})])
    a_any = mem.add("app2", deps=[dep("base", {"arch": "amd64"})])
    assert render.resolve(mem, a1).layers()[0].image.id == old
    # more than one match: the source's first (the latest import) wins
    assert render.resolve(mem, a_any).layers()[0].image.id == new


def test_image_id_must_match(mem) -> None:
    base = mem.add("base", {"/v": "1"})
    other = mem.add("base", {"/v": "2"}, labels={"version": "2"})
    ok = mem.add("ok", deps=[dep("base", image_id=base)])
    assert render.resolve(mem, ok).layers()[0].image.id == base  # picked among two matches
    bad_id = "sha512-" + "0" * 128
    bad = mem.add("bad", deps=[dep("base", image_id=bad_id)])
    with pytest.raises(render.DependencyMismatch) as e:
        render.resolve(mem, bad)
    msg = str(e.value)
    assert "base" in msg and render.short(bad_id) in msg and render.short(other) in msg


def test_missing_dependency_names_image_and_labels(mem) -> None:
    a = mem.add("app", deps=[dep("example.com/nope", {"version": "9", "os": "linux"})])
    with pytest.raises(render.DependencyNotFound) as e:
        render.resolve(mem, a)
    assert "example.com/nope (version=9, os=linux)" in str(e.value)
    assert "app" in str(e.value)


def test_fetch_is_used_for_a_missing_dependency(mem) -> None:
    a = mem.add("app", deps=[dep("late", {"version": "1"})])
    asked = []

    def fetch(name: str, labels: dict[str, str]) -> str:
        asked.append((name, labels))
        return mem.add(name, {"/late": "x"}, labels=labels)

    g = render.resolve(mem, a, fetch=fetch)
    assert asked == [("late", {"version": "1"})]
    assert g.order_names() == ["late", "app"]


def test_cycle_is_an_error_that_prints_the_cycle(mem) -> None:
    mem.add("x", deps=[dep("y")])
    mem.add("y", deps=[dep("z")])
    mem.add("z", deps=[dep("x")])
    top = mem.add("top", deps=[dep("x")])
    with pytest.raises(render.DependencyCycle) as e:
        render.resolve(mem, top)
    assert "x → y → z → x" in str(e.value)
    assert e.value.cycle == ["x", "y", "z", "x"]


def test_self_dependency_is_a_cycle(mem) -> None:
    mem.add("self", {"/a": "old"})
    s = mem.add("self", {"/a": "new"}, deps=[dep("self")])
    # the newest "self" depends on "self" by name, which resolves to itself
    with pytest.raises(render.DependencyCycle):
        render.resolve(mem, s)


def test_tree_key_depends_on_resolved_ids(mem) -> None:
    mem.add("base", {"/v": "1"})
    a = mem.add("app", deps=[dep("base")])
    k1 = render.resolve(mem, a).key()
    assert k1 == render.resolve(mem, a).key() and k1.startswith("deps-sha512-")
    mem.add("base", {"/v": "2"})  # a newer base now matches the name
    assert render.resolve(mem, a).key() != k1
