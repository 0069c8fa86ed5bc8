"""Interop with appc's reference tool, actool 0.8.11 (built offline by provision/build-tools.sh)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from sandbox.image import aci

from .conftest import compress_with_cli, sha512sum_uncompressed

COMPRESSIONS = ["none", "gzip", "bzip2", "xz"]


def actool_ok(actool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([actool, *args], capture_output=True, text=True)


@pytest.fixture
def rich_layout(make_layout):
    layout = make_layout(files={"etc/hello": b"hello\n", "usr/lib/data": os.urandom(20000),
                                "a/b/c/d": b"deep"})
    os.symlink("/etc/hello", layout / "rootfs/etc/link")
    os.link(layout / "rootfs/etc/hello", layout / "rootfs/etc/hard")
    os.chmod(layout / "rootfs/a/b/c/d", 0o700)
    return layout


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_actool_validates_our_acis(actool, rich_layout, tmp_path, compression):
    out = tmp_path / f"ours-{compression}.aci"
    aci.build(rich_layout, out, compression=compression)
    p = actool_ok(actool, "validate", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    cat = actool_ok(actool, "cat-manifest", str(out))
    assert cat.returncode == 0
    assert json.loads(cat.stdout)["name"] == "example.com/hello"


@pytest.mark.parametrize("owner_root", [False, True])
def test_we_validate_actool_acis_and_agree_on_the_id(actool, rich_layout, tmp_path, owner_root):
    theirs = tmp_path / "theirs.aci"
    args = ["build"] + (["--owner-root"] if owner_root else []) + [str(rich_layout), str(theirs)]
    p = actool_ok(actool, *args)
    assert p.returncode == 0, p.stderr
    assert aci.detect_compression(theirs) == "gzip"
    assert aci.validate(theirs) == []
    assert aci.image_id(theirs) == sha512sum_uncompressed(theirs, "gzip")
    assert aci.read_manifest(theirs).name == "example.com/hello"
    dest = tmp_path / "x"
    aci.extract_rootfs(theirs, dest)
    assert (dest / "etc/hello").read_bytes() == b"hello\n"
    assert os.readlink(dest / "etc/link") == "/etc/hello"


def test_one_actool_tar_in_four_compressions_has_one_id(actool, rich_layout, tmp_path):
    plain = tmp_path / "plain.aci"
    assert actool_ok(actool, "build", "--no-compression", str(rich_layout), str(plain)).returncode == 0
    expected = sha512sum_uncompressed(plain, "none")
    for c in COMPRESSIONS:
        f = compress_with_cli(plain, c, tmp_path / f"p.{c}")
        assert aci.image_id(f) == expected
        assert aci.validate(f) == []
        assert actool_ok(actool, "validate", str(f)).returncode == 0


def _entries(path: Path) -> set[tuple]:
    # rootfs only: actool re-serialises the manifest JSON, so its bytes differ
    with aci.open_tar(path) as t:
        return {(aci.normalize_entry(m.name), m.type, m.mode, m.size, m.mtime, m.uid, m.gid,
                 aci.normalize_entry(m.linkname) if m.islnk() else m.linkname)
                for m in t if m.name.lstrip("./").startswith("rootfs")}


@pytest.mark.parametrize("owner_root", [False, True])
def test_same_layout_same_entries_as_actool(actool, rich_layout, tmp_path, owner_root):
    theirs, ours = tmp_path / "theirs.aci", tmp_path / "ours.aci"
    args = ["build"] + (["--owner-root"] if owner_root else []) + [str(rich_layout), str(theirs)]
    assert actool_ok(actool, *args).returncode == 0
    aci.build(rich_layout, ours, owner_root=owner_root)
    assert _entries(ours) == _entries(theirs)


@pytest.mark.parametrize("entries,actool_says", [
    ([{"name": "rootfs/a", "data": b"x"}], "no rootfs"),
    ([{"name": "rootfs", "type": "dir"}, {"name": "README", "data": b"x"}], "unrecognized"),
    ([{"name": "rootfs", "type": "dir"}, {"name": "rootfs/a", "data": b"1"},
      {"name": "rootfs/a", "data": b"2"}], "duplicate"),
    ([{"name": "rootfs", "data": b"x"}], "not a directory"),
])
def test_both_validators_reject(actool, write_tar, good_manifest, entries, actool_says):
    p = write_tar("bad.aci", entries, manifest=good_manifest)
    r = actool_ok(actool, "validate", str(p))
    assert r.returncode != 0 and actool_says in (r.stdout + r.stderr)
    assert aci.validate(p) != []


def test_we_are_stricter_where_actool_is_lax(actool, write_tar, good_manifest):
    # appc.md §1: actool accepts a top-level `rootfsX` (HasPrefix check); the spec allows only
    # `manifest` and `rootfs`, and so do we.
    p = write_tar("quirk.aci", [{"name": "rootfs", "type": "dir"},
                                {"name": "rootfsX", "data": b"x"}], manifest=good_manifest)
    assert actool_ok(actool, "validate", str(p)).returncode == 0
    assert any("top level" in x for x in aci.validate(p))
