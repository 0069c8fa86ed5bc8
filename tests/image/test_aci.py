"""ACI archives: image IDs against sha512sum, reproducible builds, the archive rules."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from sandbox.image import aci
from sandbox.steps import Steps

from .conftest import compress_with_cli, sha512sum_uncompressed

COMPRESSIONS = ["none", "gzip", "bzip2", "xz"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_build_id_matches_sha512sum_of_uncompressed_tar(make_layout, tmp_path, compression):
    layout = make_layout(files={"etc/hello": b"hello\n", "usr/share/big": os.urandom(300_000)})
    out = tmp_path / f"img-{compression}.aci"
    iid = aci.build(layout, out, compression=compression)
    expected = sha512sum_uncompressed(out, compression)
    assert iid == expected
    assert aci.image_id(out) == expected
    assert aci.detect_compression(out) == compression


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_id_of_a_tar_compressed_by_the_real_tools(make_layout, tmp_path, compression):
    plain = tmp_path / "plain.aci"
    aci.build(make_layout(), plain, compression="none")
    reference = "sha512-" + hashlib.sha512(plain.read_bytes()).hexdigest()
    other = compress_with_cli(plain, compression, tmp_path / "other.bin")   # no .aci suffix
    assert aci.image_id(other) == reference
    assert aci.detect_compression(other) == compression


def test_one_tar_four_compressions_one_id(make_layout, tmp_path):
    layout = make_layout()
    ids = {c: aci.build(layout, tmp_path / f"{c}.aci", compression=c) for c in COMPRESSIONS}
    assert len(set(ids.values())) == 1
    assert len({(tmp_path / f"{c}.aci").read_bytes() for c in COMPRESSIONS}) == 4


def test_short_id_and_store_key(make_layout, tmp_path):
    iid = aci.build(make_layout(), tmp_path / "a.aci")
    digest = sha512sum_uncompressed(tmp_path / "a.aci", "gzip")[len("sha512-"):]
    assert len(iid) == 7 + 128
    assert aci.short_id(iid) == "sha512-" + digest[:32]
    assert aci.store_key(iid) == "sha512-" + digest[:64]


def test_build_is_reproducible(make_layout, tmp_path):
    layout = make_layout(files={"b/z": b"1", "a/y": b"2", "a/x": b"3", "c": b"4"})
    for c in COMPRESSIONS:
        a = aci.build(layout, tmp_path / f"1-{c}.aci", compression=c)
        b = aci.build(layout, tmp_path / f"2-{c}.aci", compression=c)
        assert a == b
        assert (tmp_path / f"1-{c}.aci").read_bytes() == (tmp_path / f"2-{c}.aci").read_bytes()
    # the gzip header carries neither a time nor a file name
    head = (tmp_path / "1-gzip.aci").read_bytes()[:10]
    assert head[4:8] == b"\0\0\0\0" and head[3] & 0x08 == 0


def test_entries_sorted_parents_first_and_timestamps_kept(make_layout, tmp_path):
    layout = make_layout(files={"b/z": b"1", "a/y": b"2", "a/x/deep": b"3", "c": b"4"})
    os.utime(layout / "rootfs/a/y", (1234567890, 1234567890))
    out = tmp_path / "o.aci"
    aci.build(layout, out, compression="none")
    with tarfile.open(out) as t:
        members = t.getmembers()
    names = [m.name for m in members]
    assert names == ["manifest", "rootfs", "rootfs/a", "rootfs/a/x", "rootfs/a/x/deep",
                     "rootfs/a/y", "rootfs/b", "rootfs/b/z", "rootfs/c"]
    y = next(m for m in members if m.name == "rootfs/a/y")
    assert y.mtime == 1234567890
    assert all(m.uname == "" and m.gname == "" for m in members)


def test_owner_root(make_layout, tmp_path):
    layout = make_layout()
    if os.geteuid() == 0:
        os.chown(layout / "rootfs/etc/hello", 1234, 4321)
    out = tmp_path / "o.aci"
    aci.build(layout, out, compression="none", owner_root=True)
    with tarfile.open(out) as t:
        assert {(m.uid, m.gid) for m in t.getmembers()} == {(0, 0)}
    aci.build(layout, out, compression="none", overwrite=True)
    with tarfile.open(out) as t:
        hello = t.getmember("rootfs/etc/hello")
    st = os.stat(layout / "rootfs/etc/hello")
    assert (hello.uid, hello.gid) == (st.st_uid, st.st_gid)


def test_hardlinks_symlinks_modes_and_xattrs_survive(make_layout, tmp_path):
    layout = make_layout(files={"bin/tool": b"#!/bin/sh\n"})
    os.chmod(layout / "rootfs/bin/tool", 0o750)
    os.link(layout / "rootfs/bin/tool", layout / "rootfs/bin/tool2")
    os.symlink("/bin/tool", layout / "rootfs/bin/sym")
    try:
        os.setxattr(layout / "rootfs/bin/tool", "user.lab", b"yes")
        has_xattr = True
    except OSError:
        has_xattr = False
    out = tmp_path / "o.aci"
    aci.build(layout, out, compression="none")
    with tarfile.open(out) as t:
        tool, tool2, sym = (t.getmember(f"rootfs/bin/{n}") for n in ("tool", "tool2", "sym"))
    assert tool.mode == 0o750 and tool.isreg()
    assert tool2.islnk() and tool2.linkname == "rootfs/bin/tool"
    assert sym.issym() and sym.linkname == "/bin/tool"
    if has_xattr:
        assert tool.pax_headers.get("SCHILY.xattr.user.lab") == "yes"


def test_build_refuses_existing_output_and_bad_layouts(make_layout, tmp_path):
    layout = make_layout()
    out = tmp_path / "o.aci"
    aci.build(layout, out)
    with pytest.raises(aci.SandboxError, match="already exists"):
        aci.build(layout, out)
    (layout / "extra").write_text("x")
    with pytest.raises(aci.InvalidImage, match="extra"):
        aci.build(layout, out, overwrite=True)
    with pytest.raises(aci.SandboxError, match="compression"):
        aci.build(make_layout(), tmp_path / "p.aci", compression="zstd")
    assert not list(tmp_path.glob(".*tmp*"))


def test_steps_record_entries_and_bytes_hashed(make_layout, tmp_path):
    steps = Steps()
    out = tmp_path / "o.aci"
    aci.build(make_layout(), out, compression="xz", steps=steps)
    written = [s.what for s in steps.of("write")]
    assert "rootfs/etc/hello" in written and "manifest" in written
    h = Steps()
    aci.image_id(out, steps=h)
    tar_size = len(subprocess.run(["xz", "-dc", str(out)], capture_output=True).stdout)
    assert h.of("hash")[0].detail["bytes_hashed"] == tar_size


# ---------------------------------------------------------------------------- validation rules

def problems_of(path: Path) -> list[str]:
    return aci.validate(path)


def test_valid_archive_with_dot_slash_names(write_tar, good_manifest):
    p = write_tar("ok.aci", [{"name": "./rootfs/", "type": "dir"},
                             {"name": "./rootfs/etc/hello", "data": b"x"}], manifest=good_manifest)
    assert problems_of(p) == []


@pytest.mark.parametrize("entries,needle", [
    ([{"name": "rootfs/a", "data": b"x"}], "no 'rootfs' directory entry"),
    ([{"name": "rootfs", "data": b"x"}], "'rootfs': must be a directory"),
    ([{"name": "rootfs", "type": "dir"}, {"name": "README", "data": b"x"}], "top level"),
    ([{"name": "rootfs", "type": "dir"}, {"name": "manifest/x", "data": b"x"}], "below it"),
    ([{"name": "rootfs", "type": "dir"}, {"name": "rootfsX", "data": b"x"}], "top level"),
    ([{"name": "rootfs", "type": "dir"}, {"name": "rootfs/a", "data": b"1"},
      {"name": "./rootfs/a", "data": b"2"}], "duplicate"),
    ([{"name": "rootfs", "type": "dir"}, {"name": "/rootfs/abs", "data": b"x"}], "absolute"),
    ([{"name": "rootfs", "type": "dir"}, {"name": "rootfs/../escape", "data": b"x"}], "'..'"),
    ([{"name": "rootfs", "type": "dir"}, {"name": "rootfs/l", "type": "lnk",
                                          "linkname": "/etc/passwd"}], "hard link"),
])
def test_archive_rules(write_tar, good_manifest, entries, needle):
    p = write_tar("bad.aci", entries, manifest=good_manifest)
    probs = problems_of(p)
    assert probs and any(needle in x for x in probs), probs


def test_missing_manifest_and_bad_manifest(write_tar):
    p = write_tar("nomf.aci", [{"name": "rootfs", "type": "dir"}])
    assert any("no 'manifest'" in x for x in problems_of(p))
    bad = json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "Bad Name"}).encode()
    p = write_tar("badmf.aci", [{"name": "rootfs", "type": "dir"}], manifest=bad)
    probs = problems_of(p)
    assert probs and all(x.startswith("manifest: ") for x in probs)
    assert any("name" in x for x in probs)


def test_not_an_archive_and_truncated(tmp_path, make_layout):
    junk = tmp_path / "junk.aci"
    junk.write_bytes(b"\x00hello" * 100)
    assert "magic" in problems_of(junk)[0]
    full = tmp_path / "full.aci"
    aci.build(make_layout(files={"big": os.urandom(100_000)}), full, compression="gzip")
    cut = tmp_path / "cut.aci"
    cut.write_bytes(full.read_bytes()[:20_000])
    assert any("corrupt or truncated" in x or "unreadable" in x for x in problems_of(cut))


def test_validate_layout_and_manifest_files(make_layout, tmp_path):
    layout = make_layout()
    assert aci.validate(layout) == []
    assert aci.validate(layout / "manifest") == []
    (layout / "rootfs").rename(layout / "root")
    probs = aci.validate(layout)
    assert any("rootfs" in p for p in probs) and any("root:" in p for p in probs)
    spaced = tmp_path / "pod"
    spaced.write_text("\n  " + json.dumps({"acKind": "PodManifest", "acVersion": "0.8.11", "apps": []}))
    assert aci.validate(spaced) == []
    mf = tmp_path / "m.json"
    mf.write_text("{not json")
    assert "not valid JSON" in aci.validate(mf)[0]


def test_repeated_key_in_an_archived_manifest_is_a_problem(make_layout, tmp_path):
    layout = make_layout()
    text = (layout / "manifest").read_text()
    (layout / "manifest").write_text(text[:text.rfind("}")] + ', "name": "example.com/other"}')
    out = tmp_path / "dup.aci"
    import tarfile
    with tarfile.open(out, "w") as t:     # aci.build validates first; write the archive by hand
        t.add(layout / "manifest", "manifest")
        t.add(layout / "rootfs", "rootfs")
    probs = aci.validate(out)
    assert any("'name' appears twice" in p for p in probs), probs


def test_read_manifest_and_open_tar(make_layout, tmp_path):
    out = tmp_path / "a.aci"
    aci.build(make_layout(name="example.com/zz", version="9"), out, compression="bzip2")
    m = aci.read_manifest(out)
    assert m.name == "example.com/zz" and m.labels["version"] == "9"
    with aci.open_tar(out) as t:
        names = [x.name for x in t]
    assert names[0] == "manifest" and "rootfs/etc/hello" in names


def test_gzip_output_is_standard(make_layout, tmp_path):
    out = tmp_path / "a.aci"
    aci.build(make_layout(), out, compression="gzip")
    assert subprocess.run(["gzip", "-t", str(out)]).returncode == 0
    assert gzip.decompress(out.read_bytes())[257:262] == b"ustar"


def test_parallel_gzip_is_standard_and_independent_of_threads(tmp_path):
    import io
    import random
    rng = random.Random(7)
    text = b" ".join(rng.choice([b"alpha", b"beta", b"gamma", b"delta"]) for _ in range(300_000))
    data = os.urandom(1_500_000) + text + os.urandom(70_000) + b"tail"
    outs = []
    for threads in (1, 3):
        raw = io.BytesIO()
        w = aci._GzipBlockWriter(raw, threads=threads)
        for i in range(0, len(data), 100_000):   # uneven writes across block boundaries
            w.write(data[i:i + 100_000])
        w.close()
        outs.append(raw.getvalue())
    assert outs[0] == outs[1]
    (tmp_path / "x.gz").write_bytes(outs[0])
    plain = subprocess.run(["gzip", "-dc", str(tmp_path / "x.gz")], capture_output=True, check=True).stdout
    assert plain == data
    assert len(outs[0]) < len(data) - len(text) // 2   # the text part really compressed


def test_failed_build_leaves_no_file_and_no_threads(make_layout, tmp_path, monkeypatch):
    import builtins
    import threading
    layout = make_layout(files={"a-big": os.urandom(3 << 20), "z-unreadable": b"x"})
    real_open = builtins.open

    def failing_open(path, *a, **kw):   # root reads anything: simulate an unreadable file
        if str(path).endswith("/z-unreadable"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    before = threading.active_count()
    monkeypatch.setattr(builtins, "open", failing_open)
    with pytest.raises(aci.SandboxError, match="Permission denied"):
        aci.build(layout, tmp_path / "o.aci", compression="gzip")
    monkeypatch.undo()
    assert not (tmp_path / "o.aci").exists() and not list(tmp_path.glob(".o.aci.tmp-*"))
    assert threading.active_count() <= before
