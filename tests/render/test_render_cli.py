"""`sandbox image render|unrender|deps|trees` (thin layers over render and treestore)."""
from __future__ import annotations

import json

import pytest
from renderkit import dep

from sandbox.render import treestore


@pytest.fixture
def images(sb):
    sb.add("example.com/b", {"/who": "b", "/b": "b"})
    sb.add("example.com/d", {"/who": "d", "/d": "d", "/dx": "d"})
    sb.add("example.com/c", {"/who": "c"}, deps=[dep("example.com/d")], pwl=["/who", "/d"])
    sb.add("example.com/a", {"/a": "a"}, deps=[dep("example.com/b"), dep("example.com/c")])
    yield sb
    treestore.close_all()


def test_deps_prints_dag_and_override_order(images, run_cli) -> None:
    rc, out, err = run_cli("image", "deps", "example.com/a")
    assert rc == 0, err
    order = out.split("override order")[1].split("\n\n")[0]
    lines = [l.split(".", 1)[1].split()[0] for l in order.splitlines()[1:] if l.strip()]
    assert lines == ["example.com/b", "example.com/d", "example.com/c", "example.com/a"]
    assert "filtered by: example.com/c" in order
    rc, out, _ = run_cli("image", "deps", "example.com/a", "--json")
    assert [o["name"] for o in json.loads(out)["order"]] == \
        ["example.com/b", "example.com/d", "example.com/c", "example.com/a"]


def test_deps_of_missing_dependency_is_one_sentence(sb, run_cli) -> None:
    sb.add("example.com/app", deps=[dep("example.com/gone", {"version": "1"})])
    rc, out, err = run_cli("image", "deps", "example.com/app")
    assert rc == 1 and "Traceback" not in err
    assert "example.com/gone (version=1)" in err and "not in the image store" in err


@pytest.mark.root
def test_render_overlay_then_unrender(images, run_cli, tmp_path) -> None:
    d = tmp_path / "sbx-rendered"
    rc, out, err = run_cli("image", "render", "example.com/a", d, "--trace")
    assert rc == 0, err
    assert "overlay mount" in out and f"sandbox image unrender {d}" in out
    assert (d / "who").read_text() == "c" and not (d / "dx").exists() and (d / "b").exists()
    assert "/dx" in out and "filtered out by the whitelist of example.com/c" in out
    assert any(l.split()[4] == str(d) for l in open("/proc/self/mountinfo"))
    rc, out, err = run_cli("image", "render", "example.com/a", tmp_path / "sbx-second")
    assert rc == 0 and out.startswith("tree store hit")
    run_cli("image", "unrender", tmp_path / "sbx-second")
    rc, out, err = run_cli("image", "trees")
    assert "example.com/a" in out and str(d) in out
    rc, out, err = run_cli("image", "unrender", d)
    assert rc == 0, err
    assert not d.exists() and not any(l.split()[4] == str(d) for l in open("/proc/self/mountinfo"))
    rc, out, err = run_cli("image", "unrender", d)
    assert rc == 1 and "not a directory" in err


def test_render_no_overlay_is_a_plain_directory(images, run_cli, tmp_path) -> None:
    d = tmp_path / "plain"
    rc, out, err = run_cli("image", "render", "example.com/a", d, "--no-overlay")
    assert rc == 0, err
    assert "plain copy" in out and f"rm -rf {d}" in out
    assert sorted(p.name for p in d.iterdir()) == ["a", "b", "d", "who"]
    assert treestore.active_copies() == []
    rc, out, err = run_cli("image", "render", "example.com/a", d, "--no-overlay")
    assert rc == 1 and "must be an empty directory" in err


def test_image_verify_also_checks_rendered_trees(images, run_cli) -> None:
    tree = treestore.render_image(images.store, "example.com/a")
    rc, out, err = run_cli("image", "verify", "example.com/a")
    assert rc == 0 and "ok" in out, err
    (tree.rootfs / "who").write_text("tampered")
    rc, out, err = run_cli("image", "verify", "example.com/a")
    assert rc == 1
    assert "was modified after rendering" in out and "/who changed (content)" in out
