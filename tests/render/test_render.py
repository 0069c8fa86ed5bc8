"""Rendering on real files: override order, overwrite rules, shadowing, pathWhitelist, safety,
and the trace (ace.md §Filesystem Setup; aci.md §pathWhitelist)."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from renderkit import dep, snapshot

from sandbox import render


def do_render(mem, top: str, dest: Path) -> render.RenderTrace:
    return render.render(render.resolve(mem, top), dest, mem.open_tar)


def read(p: Path) -> str:
    return p.read_text()


def test_tree_example_override_order_on_disk(mem, tmp_path) -> None:
    # A -> [B, C], C -> [D]; override order B, D, C, A: later copies win.
    mem.add("b", {"/f1": "b", "/f2": "b", "/f4": "b", "/all": "b"})
    mem.add("d", {"/f1": "d", "/f3": "d", "/all": "d"})
    mem.add("c", {"/f2": "c", "/f3": "c", "/all": "c"}, deps=[dep("d")])
    a = mem.add("a", {"/all": "a"}, deps=[dep("b"), dep("c")])
    out = tmp_path / "out"
    trace = do_render(mem, a, out)
    assert {p: read(out / p) for p in ["f1", "f2", "f3", "f4", "all"]} == \
        {"f1": "d", "f2": "c", "f3": "c", "f4": "b", "all": "a"}
    assert trace.owner("/all") == "a"
    assert [(e.kind, trace.layer(e.layer)["name"]) for e in trace.paths["/all"].events] == \
        [("wrote", "b"), ("overrode", "d"), ("overrode", "c"), ("overrode", "a")]


def test_dag_example_examines_shared_dependency_with_each_chains_whitelist(mem, tmp_path) -> None:
    # A -> [B, C], B -> [D], C -> [D]; order D, B, D, C, A; each D pass has its own whitelist.
    mem.add("d", {"/d1": "d", "/d2": "d", "/d3": "d"})
    mem.add("b", {"/b": "b", "/bx": "b"}, deps=[dep("d")], pwl=["/d1", "/b"])
    mem.add("c", {"/c": "c"}, deps=[dep("d")], pwl=["/d2", "/c"])
    a = mem.add("a", {"/a": "a"}, deps=[dep("b"), dep("c")])
    out = tmp_path / "out"
    trace = do_render(mem, a, out)
    assert sorted(snapshot(out)) == ["/a", "/b", "/c", "/d1", "/d2"]
    assert [(l, by) for l, by in trace.removed_by_whitelist()["/d3"]] == [(1, ["b"]), (3, ["c"])]
    assert trace.removed_by_whitelist()["/bx"] == [(2, ["b"])]
    # /d1 was dropped in D's second pass (C's list) but the first pass's copy stays
    assert trace.owner("/d1") == "d" and trace.paths["/d1"].final == 1
    assert trace.paths["/d2"].final == 3


def test_sibling_whitelist_never_filters_a_sibling(mem, tmp_path) -> None:
    # appc.md §2: for A -> [B, C(pwl)], C -> [D] the reference renderer filters B with C's
    # whitelist (getUpperPWLM). The spec: a file is filtered by the whitelists of its own image
    # and of the images depending on it; C does not depend on B.
    mem.add("b", {"/b/file": "b", "/shared": "b"})
    mem.add("d", {"/d": "d", "/dx": "d"})
    mem.add("c", {"/c": "c"}, deps=[dep("d")], pwl=["/c", "/d"])
    a = mem.add("a", deps=[dep("b"), dep("c")])
    out = tmp_path / "out"
    trace = do_render(mem, a, out)
    assert sorted(snapshot(out)) == ["/b", "/b/file", "/c", "/d", "/shared"]
    assert "/b/file" not in trace.removed_by_whitelist()
    assert trace.removed_by_whitelist()["/dx"] == [(2, ["c"])]


def test_nested_whitelists_all_apply_along_the_chain(mem, tmp_path) -> None:
    # A(pwl) -> B(pwl) -> C: a file of C survives only if A's and B's lists both name it.
    mem.add("c", {"/x": "c", "/y": "c", "/z": "c"})
    mem.add("b", deps=[dep("c")], pwl=["/x", "/z"])
    a = mem.add("a", {"/a": "a"}, deps=[dep("b")], pwl=["/x", "/y", "/a"])
    out = tmp_path / "out"
    trace = do_render(mem, a, out)
    assert sorted(snapshot(out)) == ["/a", "/x"]
    assert trace.removed_by_whitelist()["/y"] == [(1, ["b"])]
    assert trace.removed_by_whitelist()["/z"] == [(1, ["a"])]


def test_top_whitelist_keeps_listed_paths_and_their_directories(mem, tmp_path) -> None:
    mem.add("base", {"/bin/sh": ("file", "sh", 0o755), "/bin/ls": "ls", "/etc/passwd": "root",
                     "/usr/lib/libc.so": "c", "/bin": ("dir", 0o711)})
    a = mem.add("app", {"/app/run": "run", "/app/junk": "j"}, deps=[dep("base")],
                pwl=["/bin/sh", "/app/run", "/usr/lib/"])
    out = tmp_path / "out"
    do_render(mem, a, out)
    snap = snapshot(out)
    assert sorted(snap) == ["/app", "/app/run", "/bin", "/bin/sh", "/usr", "/usr/lib"]
    assert snap["/bin"] == ("dir", 0o711)  # the kept directory keeps its own metadata
    assert snap["/bin/sh"] == ("file", b"sh", 0o755)


def test_trailing_slash_lists_the_directory_only(mem, tmp_path) -> None:
    # Like the reference test TestPWLOnlyParent: "/c/" keeps /c, not what is in it.
    a = mem.add("a", {"/c/f": "f", "/c/g/h": "h", "/e": "e"}, pwl=["/c/", "/e"])
    out = tmp_path / "out"
    do_render(mem, a, out)
    assert sorted(snapshot(out)) == ["/c", "/e"]


def test_empty_whitelist_means_no_whitelist(mem, tmp_path) -> None:
    mem.add("b", {"/b": "b"})
    a = mem.add("a", {"/a": "a"}, deps=[dep("b")], pwl=[])
    out = tmp_path / "out"
    do_render(mem, a, out)
    assert sorted(snapshot(out)) == ["/a", "/b"]


def test_symlink_to_directory_is_replaced_never_followed(mem, tmp_path) -> None:
    outside = tmp_path / "host-dir"
    outside.mkdir()
    mem.add("b", {"/usr/lib/x": "x", "/lib": ("symlink", "/usr/lib"),
                  "/escape": ("symlink", str(outside)), "/rel": ("symlink", "usr")})
    a = mem.add("a", {"/lib/y": "y", "/escape/pwned": "p", "/rel/z": "z"}, deps=[dep("b")])
    out = tmp_path / "out"
    trace = do_render(mem, a, out)
    snap = snapshot(out)
    assert snap["/lib"][0] == "dir" and snap["/lib/y"][1] == b"y"
    assert "/usr/lib/y" not in snap and "/usr/z" not in snap
    assert snap["/escape"][0] == "dir" and list(outside.iterdir()) == []
    assert [e.kind for e in trace.paths["/lib"].events] == ["wrote", "overrode"]


def test_existing_paths_are_overwritten_whatever_their_type(mem, tmp_path) -> None:
    mem.add("b", {"/f": "file", "/s": ("symlink", "f"), "/d/x": "x", "/ro": ("file", "r", 0o400)})
    a = mem.add("a", {"/f": ("symlink", "elsewhere"), "/s": "now a file", "/d": ("dir", 0o700),
                      "/ro": ("file", "w", 0o644)}, deps=[dep("b")])
    out = tmp_path / "out"
    do_render(mem, a, out)
    snap = snapshot(out)
    assert snap["/f"] == ("symlink", "elsewhere")
    assert snap["/s"] == ("file", b"now a file", 0o644)
    assert snap["/d"] == ("dir", 0o700) and snap["/d/x"][1] == b"x"  # directories merge
    assert snap["/ro"] == ("file", b"w", 0o644)


def test_file_in_upper_image_shadows_a_whole_directory(mem, tmp_path) -> None:
    mem.add("b", {"/opt/x/1": "1", "/opt/x/sub/2": "2", "/opt/keep": "k"})
    a = mem.add("a", {"/opt/x": "I am a file now"}, deps=[dep("b")])
    out = tmp_path / "out"
    trace = do_render(mem, a, out)
    snap = snapshot(out)
    assert sorted(snap) == ["/opt", "/opt/keep", "/opt/x"]
    assert snap["/opt/x"][0] == "file"
    for p in ["/opt/x/1", "/opt/x/sub", "/opt/x/sub/2"]:
        [ev] = [e for e in trace.paths[p].events if e.kind == "shadowed"]
        assert ev.at == "/opt/x" and trace.layer(ev.layer)["name"] == "a"


def test_sequential_extraction_does_not_resurrect_shadowed_files(mem, tmp_path) -> None:
    # D puts /x/y; C's file /x removes it; A's directory /x starts empty again. Extracting in
    # order (the spec's process) leaves only /x/z; a first-writer-wins renderer that checks
    # only the winning parent would bring /x/y back.
    mem.add("d", {"/x/y": "y"})
    mem.add("c", {"/x": "file"}, deps=[dep("d")])
    a = mem.add("a", {"/x/z": "z"}, deps=[dep("c")])
    out = tmp_path / "out"
    do_render(mem, a, out)
    assert sorted(snapshot(out)) == ["/x", "/x/z"]


def test_hardlinks_stay_inside_the_image(mem, tmp_path) -> None:
    a = mem.add("a", {"/bin/busybox": ("file", "BB", 0o755), "/bin/sh": ("hardlink", "/bin/busybox"),
                      "/keep": ("hardlink", "/bin/gone"), "/bin/gone": "data"},
                pwl=["/bin/busybox", "/bin/sh", "/keep"])
    out = tmp_path / "out"
    do_render(mem, a, out)
    assert os.stat(out / "bin/sh").st_ino == os.stat(out / "bin/busybox").st_ino
    assert (out / "keep").read_text() == "data"  # its target was filtered: content kept
    assert not (out / "bin/gone").exists()


def _raw_aci(entries: list[tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        m = b'{"acKind":"ImageManifest","acVersion":"0.8.11","name":"evil"}'
        mi = tarfile.TarInfo("manifest"); mi.size = len(m)
        t.addfile(mi, io.BytesIO(m))
        for e in entries:
            t.addfile(e, io.BytesIO(b"x" * e.size) if e.isreg() else None)
    return buf.getvalue()


@pytest.mark.parametrize("name,kind,link", [
    ("rootfs/../../evil", tarfile.REGTYPE, ""),
    ("/rootfs/evil", tarfile.REGTYPE, ""),
    ("rootfs/a/../../evil", tarfile.REGTYPE, ""),
    ("rootfs/hl", tarfile.LNKTYPE, "../etc/passwd"),
    ("rootfs/hl", tarfile.LNKTYPE, "/etc/passwd"),
])
def test_unsafe_entries_are_refused(mem, tmp_path, name, kind, link) -> None:
    from renderkit import image_id
    info = tarfile.TarInfo(name); info.type = kind; info.linkname = link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    data = _raw_aci([info])
    i = image_id(data)
    mem.blobs[i] = data
    from sandbox.image.manifest import ImageManifest
    mem.manifests[i] = ImageManifest.from_json({"acKind": "ImageManifest", "acVersion": "0.8.11",
                                                "name": "evil"})
    mem.order.insert(0, i)
    out = tmp_path / "deep" / "out"
    with pytest.raises(render.RenderError):
        do_render(mem, i, out)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "deep" / "evil").exists()


def test_destination_must_be_empty(mem, tmp_path) -> None:
    a = mem.add("a", {"/a": "a"})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    with pytest.raises(render.RenderError, match="not empty"):
        do_render(mem, a, tmp_path / "out")


def test_relative_whitelist_entry_is_refused(mem) -> None:
    from sandbox.image.manifest import ManifestError
    with pytest.raises(ManifestError, match="absolute"):  # the manifest parser refuses it
        mem.add("a", {"/a": "a"}, pwl=["a"])
    with pytest.raises(render.RenderError, match="not an absolute path"):  # and so does render
        render.Whitelist.build("a", ["a"])


def test_trace_round_trips_and_renders(mem, tmp_path) -> None:
    mem.add("b", {"/x": "b", "/gone": "g"})
    a = mem.add("a", {"/x": "a"}, deps=[dep("b")], pwl=["/x"])
    trace = do_render(mem, a, tmp_path / "out")
    back = render.RenderTrace.from_json(trace.to_json())
    assert back.to_json() == trace.to_json()
    assert back.owner("/x") == "a" and back.owner("/gone") is None
    assert "filtered out by the whitelist of a" in back.describe("/gone")
    html = trace._repr_html_()
    assert "/gone" in html and "line-through" in html


def test_missing_parent_entries_are_created_and_traced(mem, tmp_path) -> None:
    from renderkit import image_id

    from sandbox.image.manifest import ImageManifest
    f = tarfile.TarInfo("rootfs/deep/er/file"); f.size = 1; f.mode = 0o600
    data = _raw_aci([f])
    i = image_id(data)
    mem.blobs[i] = data
    mem.manifests[i] = ImageManifest.from_json({"acKind": "ImageManifest", "acVersion": "0.8.11",
                                                "name": "flat"})
    trace = do_render(mem, i, tmp_path / "out")
    snap = snapshot(tmp_path / "out")
    assert snap["/deep"] == ("dir", 0o755) and snap["/deep/er/file"] == ("file", b"x", 0o600)
    assert trace.paths["/deep/er"].type == "dir"
    assert [e.kind for e in trace.paths["/deep"].events] == ["implicit"]
