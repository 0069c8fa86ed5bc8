"""The one extractor (sandbox/image/extract.py) under ACI extraction, rendering and OCI layers:
the reported attacks, OCI whiteout names, and the rules that used to differ between the three.
Every hostile case checks a canary directory outside the tree (contents, mode, owner)."""
from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from sandbox import oci, render
from sandbox.image import aci
from sandbox.image.manifest import ImageManifest

from . import make_corpus

MANIFEST = b'{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/hostile"}'


def tar_bytes(entries: list[dict], manifest: bytes | None = MANIFEST) -> bytes:
    """A plain tar of ``entries`` (make_corpus's entry format, names written as given) after an
    ACI's manifest (None: no manifest, an OCI layer)."""
    head = [{"name": "manifest", "data": manifest, "mode": 0o644}] if manifest is not None else []
    return make_corpus.tar_bytes([{**x, "raw": True, "rawlink": True} for x in head + entries],
                                 aci=False)


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A canary: a directory outside every tree, mode 0750, with one file and one subdir."""
    h = tmp_path / "host"
    (h / "b").mkdir(parents=True)
    (h / "keep").write_text("original")
    os.chmod(h, 0o750)
    os.chmod(h / "b", 0o750)
    return h


def state(h: Path) -> list:
    out = []
    for dirpath, dirnames, filenames in os.walk(h):
        for n in sorted(dirnames + filenames) + ["."]:
            st = os.lstat(os.path.join(dirpath, n))
            out.append((os.path.relpath(os.path.join(dirpath, n), h), stat.S_IMODE(st.st_mode),
                        st.st_uid, st.st_gid))
    return sorted(out)


class Mem:
    """Just enough of an image source for render.resolve / render.render."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, ImageManifest] = {}

    def add(self, name: str, data: bytes, deps: list[str] = ()) -> str:
        import hashlib
        import json
        m = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
             "dependencies": [{"imageName": d} for d in deps]}
        raw = tarfile.open(fileobj=io.BytesIO(data))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            mb = json.dumps(m).encode()
            ti = tarfile.TarInfo("manifest")
            ti.size = len(mb)
            t.addfile(ti, io.BytesIO(mb))
            for member in raw:
                if member.name != "manifest":
                    t.addfile(member, raw.extractfile(member) if member.isreg() else None)
        blob = buf.getvalue()
        i = "sha512-" + hashlib.sha512(blob).hexdigest()
        self.blobs[i] = blob
        self.manifests[i] = ImageManifest.from_json(m)
        return i

    def find(self, name: str, labels=None) -> list[str]:
        return [i for i, m in self.manifests.items() if m.name == name]

    def manifest(self, i: str) -> ImageManifest:
        return self.manifests[i]

    def open_tar(self, i: str) -> tarfile.TarFile:
        return tarfile.open(fileobj=io.BytesIO(self.blobs[i]))


def do_render(mem: Mem, top: str, out: Path) -> render.RenderTrace:
    return render.render(render.resolve(mem, top), out, mem.open_tar)


# -- the reported case: a/b/ with mode 0777, then a -> host: metadata applied through the link

def reported(host: Path) -> list[dict]:
    return [{"name": "rootfs", "type": "dir"},
            {"name": "rootfs/a/b", "type": "dir", "mode": 0o777, "uid": 4242, "gid": 4242},
            {"name": "rootfs/a", "type": "sym", "linkname": str(host)}]


def test_render_refuses_a_link_over_its_own_directory(tmp_path, host) -> None:
    before = state(host)
    mem = Mem()
    top = mem.add("example.com/evil", tar_bytes(reported(host)))
    with pytest.raises(render.RenderError, match="same archive"):
        do_render(mem, top, tmp_path / "out")
    assert state(host) == before


def test_render_refuses_it_as_a_dependency_too(tmp_path, host) -> None:
    before = state(host)
    mem = Mem()
    mem.add("example.com/evil", tar_bytes(reported(host)))
    top = mem.add("example.com/innocent", tar_bytes([{"name": "rootfs", "type": "dir"}]),
                  deps=["example.com/evil"])
    with pytest.raises(render.RenderError, match="same archive"):
        do_render(mem, top, tmp_path / "out")
    assert state(host) == before


@pytest.mark.parametrize("order", ["link-first", "dir-first"])
def test_across_layers_a_link_is_replaced_never_followed(tmp_path, host, order) -> None:
    # one image makes /a a link to the host, the other writes /a/b (0777): whichever comes
    # first, the later one overrides and nothing reaches the host
    before = state(host)
    link = tar_bytes([{"name": "rootfs", "type": "dir"},
                      {"name": "rootfs/a", "type": "sym", "linkname": str(host)}])
    dirs = tar_bytes([{"name": "rootfs", "type": "dir"},
                      {"name": "rootfs/a/b", "type": "dir", "mode": 0o777, "uid": 4242}])
    mem = Mem()
    first, second = (link, dirs) if order == "link-first" else (dirs, link)
    mem.add("example.com/one", first)
    top = mem.add("example.com/two", second, deps=["example.com/one"])
    trace = do_render(mem, top, tmp_path / "out")
    out = tmp_path / "out"
    if order == "link-first":
        assert (out / "a").is_dir() and not (out / "a").is_symlink()
        assert stat.S_IMODE(os.stat(out / "a" / "b").st_mode) == 0o777
        assert [e.kind for e in trace.paths["/a"].events] == ["wrote", "overrode"]
    else:
        assert os.readlink(out / "a") == str(host)
        assert [e.kind for e in trace.paths["/a/b"].events] == ["wrote", "shadowed"]
    assert state(host) == before


def test_aci_extraction_refuses_the_reported_archive(tmp_path, host) -> None:
    before = state(host)
    p = tmp_path / "evil.aci"
    p.write_bytes(tar_bytes(reported(host)))
    with pytest.raises(aci.UnsafeArchive, match="same archive"):
        aci.extract_rootfs(p, tmp_path / "out")
    assert state(host) == before and not (tmp_path / "out").exists()


def apply_layers(root: Path, *layers: bytes) -> list[dict]:
    """Each layer applied on its own (what is on disk counts as the lower layers)."""
    root.mkdir(exist_ok=True)
    out = []
    for data in layers:
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            out.append(oci.apply_layer(t, root))
    return out


def test_oci_layer_refuses_the_reported_archive(tmp_path, host) -> None:
    before = state(host)
    layer = tar_bytes([{"name": "a/b", "type": "dir", "mode": 0o777, "uid": 4242},
                       {"name": "a", "type": "sym", "linkname": str(host)}], manifest=None)
    with pytest.raises(oci.OciError, match="same archive"):
        apply_layers(tmp_path / "rootfs", layer)
    assert state(host) == before


# -- OCI whiteouts (layer.md §Whiteouts)

@pytest.mark.parametrize("name", [".wh...", ".wh..", ".wh.", "d/.wh...", "d/.wh..",
                                  ".wh..wh.plnk", ".wh..wh..opq.x", ".wh.d/x", "d/.wh.e/f"])
def test_whiteout_names_that_are_no_whiteout_are_refused(tmp_path, name) -> None:
    root = tmp_path / "parent" / "rootfs"
    root.mkdir(parents=True)
    (root.parent / "sibling").write_text("keep")
    lower = tar_bytes([{"name": "d", "type": "dir"}, {"name": "d/f", "data": b"lower"},
                       {"name": "top", "data": b"lower"}], manifest=None)
    upper = tar_bytes([{"name": name, "data": b""}], manifest=None)
    with pytest.raises(oci.OciError, match="whiteout|'.wh.' is reserved"):
        apply_layers(root, lower, upper)
    # nothing removed: not the layer's parent, not its own directory
    assert (root.parent / "sibling").read_text() == "keep"
    assert (root / "d" / "f").read_text() == "lower" and (root / "top").read_text() == "lower"


def test_whiteouts_remove_only_lower_layers_wherever_they_sit(tmp_path) -> None:
    root = tmp_path / "rootfs"
    lower = tar_bytes([{"name": "a", "type": "dir"}, {"name": "a/old", "data": b"lower"},
                       {"name": "a/sub", "type": "dir"}, {"name": "a/sub/deep", "data": b"lower"},
                       {"name": "gone", "data": b"lower"}, {"name": "kept", "data": b"lower"}],
                      manifest=None)
    # the whiteouts come *after* what they must not touch: the same layer's own entries
    upper = tar_bytes([{"name": "a", "type": "dir"}, {"name": "a/sub", "type": "dir"},
                       {"name": "a/sub/new", "data": b"upper"}, {"name": "kept", "data": b"upper"},
                       {"name": "a/.wh..wh..opq"}, {"name": ".wh.gone"}, {"name": ".wh.kept"}],
                      manifest=None)
    counts = apply_layers(root, lower, upper)
    assert counts[1] == {"whiteouts": 2, "opaque": 1, "entries": 4}
    assert sorted(os.listdir(root)) == ["a", "kept"]
    assert (root / "kept").read_text() == "upper"
    assert sorted(os.listdir(root / "a")) == ["sub"] and os.listdir(root / "a/sub") == ["new"]


def test_whiteouts_below_a_link_touch_nothing(tmp_path, host) -> None:
    before = state(host)
    root = tmp_path / "rootfs"
    lower = tar_bytes([{"name": "l", "type": "sym", "linkname": str(host)}], manifest=None)
    upper = tar_bytes([{"name": "l/.wh.keep"}, {"name": "l/.wh..wh..opq"}], manifest=None)
    apply_layers(root, lower, upper)
    assert os.readlink(root / "l") == str(host)
    assert state(host) == before and (host / "keep").read_text() == "original"


# -- rules that used to differ

def test_one_rule_for_setuid_devices_and_xattrs(tmp_path) -> None:
    entries = [{"name": "rootfs", "type": "dir"},
               {"name": "rootfs/su", "mode": 0o4755},
               {"name": "rootfs/null", "type": "chr"},
               {"name": "rootfs/f", "pax": {"SCHILY.xattr.user.lab": "kept",
                                            "SCHILY.xattr.trusted.overlay.opaque": "y"}}]
    p = tmp_path / "a.aci"
    p.write_bytes(tar_bytes(entries))
    res = aci.extract_rootfs(p, tmp_path / "user-dir")          # a directory a user named
    assert stat.S_IMODE(os.stat(tmp_path / "user-dir/su").st_mode) == 0o755
    mem = Mem()
    top = mem.add("example.com/x", p.read_bytes())
    do_render(mem, top, tmp_path / "tree")                      # the private tree store
    assert stat.S_IMODE(os.stat(tmp_path / "tree/su").st_mode) == 0o4755
    layer = tar_bytes([{**e, "name": e["name"][len("rootfs/"):]} for e in entries[1:]],
                      manifest=None)
    apply_layers(tmp_path / "oci", layer)                       # OCI conversion (private)
    assert stat.S_IMODE(os.stat(tmp_path / "oci/su").st_mode) == 0o4755
    for d in ("user-dir", "tree", "oci"):
        assert not os.path.lexists(tmp_path / d / "null")      # devices: never (the runtime's)
        try:
            assert os.getxattr(tmp_path / d / "f", "user.lab") == b"kept"
        except OSError:
            pass                                                # no user xattrs on this fs
        if os.geteuid() == 0:
            assert "trusted.overlay.opaque" not in os.listxattr(tmp_path / d / "f")
    assert any("trusted.overlay.opaque dropped" in w for w in res.warnings)


def test_duplicates_and_unsafe_links_are_refused_everywhere(tmp_path, host) -> None:
    cases = {
        "dup": [{"name": "x", "type": "sym", "linkname": "/etc/shadow"}, {"name": "x"}],
        "climb": [{"name": "a", "type": "dir"}, {"name": "a/up", "type": "sym",
                                                 "linkname": "../../x"}],
        "hardlink-out": [{"name": "hl", "type": "lnk", "linkname": "../../etc/passwd"}],
        "hardlink-later": [{"name": "hl", "type": "lnk", "linkname": "later"}, {"name": "later"}],
        "below-own-link": [{"name": "l", "type": "sym", "linkname": str(host)},
                           {"name": "l/pwned"}],
    }
    for why, entries in cases.items():
        aci_entries = [{"name": "rootfs", "type": "dir"}] + [
            {**e, "name": "rootfs/" + e["name"],
             **({"linkname": "rootfs/" + e["linkname"]} if e.get("type") == "lnk" and
                not e["linkname"].startswith("..") else {})} for e in entries]
        p = tmp_path / f"{why}.aci"
        p.write_bytes(tar_bytes(aci_entries))
        with pytest.raises(aci.UnsafeArchive):
            aci.extract_rootfs(p, tmp_path / f"{why}-aci")
        mem = Mem()
        top = mem.add("example.com/x", p.read_bytes())
        with pytest.raises(render.RenderError):
            do_render(mem, top, tmp_path / f"{why}-render")
        with pytest.raises(oci.OciError):
            apply_layers(tmp_path / f"{why}-oci", tar_bytes(entries, manifest=None))
    assert (host / "keep").read_text() == "original" and sorted(os.listdir(host)) == ["b", "keep"]


def test_clean_copy_changes_never_look_through_the_images_links(tmp_path, host) -> None:
    """An execution replaced the image's link /etc -> <host dir> by a directory with x in it:
    x is new, whatever the host directory holds (the old check followed the tree's link)."""
    from sandbox.render import treestore
    (host / "x").write_text("the host's own x")
    tree = treestore.Tree("k", tmp_path / "tree", "sha512-x", "t", {}, "", "", [])
    (tree.rootfs).mkdir(parents=True)
    os.symlink(str(host), tree.rootfs / "etc")
    state = tmp_path / "state"
    (state / "upper" / "etc").mkdir(parents=True)
    (state / "upper" / "etc" / "x").write_text("written by the app")
    copy = treestore.CleanCopy(tree, tmp_path / "copy", "overlay", state)
    assert copy.changes() == {"/etc": "changed", "/etc/x": "added"}
