"""Safe extraction: hostile archives never write outside the target (checked on the filesystem)."""
from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from sandbox.image import aci
from sandbox.steps import Steps

from .conftest import tree


@pytest.fixture
def arena(tmp_path: Path) -> dict[str, Path]:
    """target/ to extract into and outside/ (a sibling) that must stay untouched."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep").write_text("original")
    return {"target": tmp_path / "target", "outside": tmp_path / "outside", "root": tmp_path}


def assert_outside_untouched(arena) -> None:
    assert tree(arena["outside"]) == ["keep"]
    assert (arena["outside"] / "keep").read_text() == "original"
    # nothing new next to target/ and outside/ except the test's own files
    assert not (arena["root"] / "evil").exists()
    assert not (arena["root"] / "pwned").exists()


def test_normal_extraction(make_layout, tmp_path):
    layout = make_layout(files={"etc/hello": b"hello\n", "bin/tool": b"x"})
    os.chmod(layout / "rootfs/bin/tool", 0o755)
    os.symlink("../etc/hello", layout / "rootfs/bin/link")
    os.link(layout / "rootfs/etc/hello", layout / "rootfs/etc/hard")
    os.utime(layout / "rootfs/etc/hello", (1000000000, 1000000000))
    out = tmp_path / "a.aci"
    aci.build(layout, out, compression="xz")
    dest = tmp_path / "dest"
    steps = Steps()
    res = aci.extract_rootfs(out, dest, steps=steps)
    assert tree(dest) == tree(layout / "rootfs")
    assert (dest / "etc/hello").read_bytes() == b"hello\n"
    assert os.stat(dest / "bin/tool").st_mode & 0o777 == 0o755
    assert os.readlink(dest / "bin/link") == "../etc/hello"
    assert os.stat(dest / "etc/hard").st_ino == os.stat(dest / "etc/hello").st_ino
    assert int(os.stat(dest / "etc/hello").st_mtime) == 1000000000
    assert not (dest / "manifest").exists()
    assert res.warnings == [] and res.entries == len(tree(layout / "rootfs"))
    assert any(s.what == "rootfs/etc/hello" for s in steps.of("write"))


@pytest.mark.parametrize("evil", [
    "rootfs/../../evil",          # traversal
    "rootfs/../../outside/keep",  # traversal onto an existing file
    "/tmp/sbx-evil-abs",          # absolute
    "../evil",
])
def test_traversal_and_absolute_names_are_refused(write_tar, good_manifest, arena, evil):
    p = write_tar("e.aci", [{"name": "rootfs", "type": "dir"},
                            {"name": evil, "data": b"pwned"}], manifest=good_manifest)
    with pytest.raises(aci.UnsafeArchive, match="absolute or contains '..'"):
        aci.extract_rootfs(p, arena["target"])
    assert_outside_untouched(arena)
    assert not Path("/tmp/sbx-evil-abs").exists()
    assert not arena["target"].exists()      # a target we created is removed on failure


def test_symlink_escape_then_write_through_it_is_refused(write_tar, good_manifest, arena):
    p = write_tar("e.aci", [{"name": "rootfs", "type": "dir"},
                            {"name": "rootfs/link", "type": "sym", "linkname": str(arena["outside"])},
                            {"name": "rootfs/link/pwned", "data": b"pwned"},
                            {"name": "rootfs/link/keep", "data": b"overwritten"}],
                  manifest=good_manifest)
    with pytest.raises(aci.UnsafeArchive, match="symlink"):
        aci.extract_rootfs(p, arena["target"])
    assert_outside_untouched(arena)


def test_relative_symlink_climbing_out_is_refused(write_tar, good_manifest, arena):
    p = write_tar("e.aci", [{"name": "rootfs", "type": "dir"},
                            {"name": "rootfs/a", "type": "dir"},
                            {"name": "rootfs/a/up", "type": "sym", "linkname": "../../outside"},
                            {"name": "rootfs/a/up/pwned", "data": b"x"}], manifest=good_manifest)
    with pytest.raises(aci.UnsafeArchive, match="climbs above the rootfs"):
        aci.extract_rootfs(p, arena["target"])
    assert_outside_untouched(arena)


def test_symlink_already_in_target_is_not_followed(write_tar, good_manifest, arena):
    target = arena["target"]
    target.mkdir()
    os.symlink(arena["outside"], target / "etc")        # planted before extraction
    os.symlink(arena["outside"] / "keep", target / "f")
    p = write_tar("e.aci", [{"name": "rootfs", "type": "dir"},
                            {"name": "rootfs/etc", "type": "dir"},
                            {"name": "rootfs/etc/keep", "data": b"inside"},
                            {"name": "rootfs/f", "data": b"inside too"}], manifest=good_manifest)
    aci.extract_rootfs(p, target)
    # the symlinks were replaced (ace.md: existing paths are overwritten, links not followed)
    assert (target / "etc").is_dir() and not (target / "etc").is_symlink()
    assert (target / "etc/keep").read_bytes() == b"inside"
    assert not (target / "f").is_symlink() and (target / "f").read_bytes() == b"inside too"
    assert_outside_untouched(arena)


def test_symlink_parent_in_target_is_replaced_not_followed(write_tar, good_manifest, arena):
    # A link already in the target is earlier content: replaced by the directory the entry needs
    # (ace.md: an existing path is overwritten), never written through.
    target = arena["target"]
    target.mkdir()
    os.symlink(arena["outside"], target / "lib")
    p = write_tar("e.aci", [{"name": "rootfs", "type": "dir"},
                            {"name": "rootfs/lib/pwned", "data": b"x"}], manifest=good_manifest)
    aci.extract_rootfs(p, target)
    assert (target / "lib").is_dir() and not (target / "lib").is_symlink()
    assert (target / "lib/pwned").read_bytes() == b"x"
    assert_outside_untouched(arena)
    assert target.is_dir()   # the caller's directory is never removed


@pytest.mark.parametrize("linkname", ["/etc/passwd", "rootfs/../../outside/keep",
                                      "outside/keep", "rootfs/not-yet"])
def test_hardlink_escape_is_refused(write_tar, good_manifest, arena, linkname):
    p = write_tar("e.aci", [{"name": "rootfs", "type": "dir"},
                            {"name": "rootfs/hl", "type": "lnk", "linkname": linkname},
                            {"name": "rootfs/not-yet", "data": b"x"}], manifest=good_manifest)
    with pytest.raises(aci.UnsafeArchive, match="hard link"):
        aci.extract_rootfs(p, arena["target"])
    assert_outside_untouched(arena)
    assert os.stat("/etc/passwd").st_nlink == 1


def test_hardlink_through_symlinked_dir_is_refused(write_tar, good_manifest, arena):
    # rootfs/d -> outside (absolute symlink, allowed), then a hard link naming rootfs/d/keep
    p = write_tar("e.aci", [{"name": "rootfs", "type": "dir"},
                            {"name": "rootfs/d", "type": "sym", "linkname": str(arena["outside"])},
                            {"name": "rootfs/hl", "type": "lnk", "linkname": "rootfs/d/keep"}],
                  manifest=good_manifest)
    with pytest.raises(aci.UnsafeArchive):
        aci.extract_rootfs(p, arena["target"])
    assert os.stat(arena["outside"] / "keep").st_nlink == 1
    assert_outside_untouched(arena)


def test_device_nodes_are_skipped_unless_asked(write_tar, good_manifest, arena):
    p = write_tar("e.aci", [{"name": "rootfs", "type": "dir"},
                            {"name": "rootfs/null", "type": "chr"},
                            {"name": "rootfs/fifo", "type": "fifo"}], manifest=good_manifest)
    res = aci.extract_rootfs(p, arena["target"])
    assert not (arena["target"] / "null").exists()
    assert any("device node skipped" in w for w in res.warnings)
    assert stat.S_ISFIFO(os.lstat(arena["target"] / "fifo").st_mode)


@pytest.mark.root
def test_device_nodes_when_root_and_asked(write_tar, good_manifest, tmp_path):
    p = write_tar("e.aci", [{"name": "rootfs", "type": "dir"},
                            {"name": "rootfs/null", "type": "chr"}], manifest=good_manifest)
    aci.extract_rootfs(p, tmp_path / "t", allow_devices=True)
    st = os.lstat(tmp_path / "t" / "null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


def test_setuid_setgid_dropped_unless_asked(write_tar, good_manifest, tmp_path):
    entries = [{"name": "rootfs", "type": "dir"},
               {"name": "rootfs/su", "data": b"x", "mode": 0o4755},
               {"name": "rootfs/sg", "data": b"x", "mode": 0o2755},
               {"name": "rootfs/sgdir", "type": "dir", "mode": 0o2775},
               {"name": "rootfs/tmp", "type": "dir", "mode": 0o1777}]
    p = write_tar("e.aci", entries, manifest=good_manifest)
    res = aci.extract_rootfs(p, tmp_path / "a")
    mode = lambda n: stat.S_IMODE(os.lstat(tmp_path / "a" / n).st_mode)  # noqa: E731
    assert mode("su") == 0o755 and mode("sg") == 0o755 and mode("sgdir") == 0o775
    assert mode("tmp") == 0o1777           # the sticky bit is harmless and kept
    assert len([w for w in res.warnings if "setuid" in w]) == 3
    aci.extract_rootfs(p, tmp_path / "b", keep_setid=True)
    mode = lambda n: stat.S_IMODE(os.lstat(tmp_path / "b" / n).st_mode)  # noqa: E731
    assert mode("su") == 0o4755 and mode("sg") == 0o2755


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def test_decompression_bomb_is_refused(tmp_path, good_manifest, arena):
    # 64 MiB of zeros compress to ~64 KiB with xz: a 1000:1 bomb
    bomb = tmp_path / "bomb.aci"
    import lzma
    with lzma.open(bomb, "wb", preset=1) as f, tarfile.open(fileobj=f, mode="w|") as t:
        ti = tarfile.TarInfo("manifest")
        ti.size = len(good_manifest)
        t.addfile(ti, io.BytesIO(good_manifest))
        ti = tarfile.TarInfo("rootfs")
        ti.type = tarfile.DIRTYPE
        t.addfile(ti)
        ti = tarfile.TarInfo("rootfs/zeros")
        ti.size = 64 << 20
        t.addfile(ti, _Zeros(64 << 20))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(aci.ArchiveTooLarge, match="decompression bomb"):
        aci.extract_rootfs(bomb, arena["target"], max_bytes=8 << 20)
    assert not arena["target"].exists()
    assert_outside_untouched(arena)


def test_too_many_entries_is_refused(write_tar, good_manifest, arena):
    entries = [{"name": "rootfs", "type": "dir"}] + [
        {"name": f"rootfs/f{i}", "data": b""} for i in range(50)]
    p = write_tar("e.aci", entries, manifest=good_manifest)
    with pytest.raises(aci.ArchiveTooLarge, match="entries"):
        aci.extract_rootfs(p, arena["target"], max_entries=20)
    assert not arena["target"].exists()


def test_duplicate_entries_are_refused(write_tar, good_manifest, arena):
    p = write_tar("e.aci", [{"name": "rootfs", "type": "dir"},
                            {"name": "rootfs/x", "type": "sym", "linkname": "/etc/shadow"},
                            {"name": "rootfs/x", "data": b"second"}], manifest=good_manifest)
    with pytest.raises(aci.UnsafeArchive, match="twice"):
        aci.extract_rootfs(p, arena["target"])


def test_hardlink_to_a_directory_is_refused(write_tar, good_manifest, arena):
    p = write_tar("e.aci", [{"name": "rootfs", "type": "dir"}, {"name": "rootfs/d", "type": "dir"},
                            {"name": "rootfs/hl", "type": "lnk", "linkname": "rootfs/d"}],
                  manifest=good_manifest)
    with pytest.raises(aci.UnsafeArchive, match="hard link"):
        aci.extract_rootfs(p, arena["target"])


def test_existing_hardlink_in_target_is_replaced_not_written_through(write_tar, good_manifest, arena):
    target = arena["target"]
    target.mkdir()
    os.link(arena["outside"] / "keep", target / "f")     # an inode shared with outside/keep
    p = write_tar("e.aci", [{"name": "rootfs", "type": "dir"},
                            {"name": "rootfs/f", "data": b"new"}], manifest=good_manifest)
    aci.extract_rootfs(p, target)
    assert (target / "f").read_bytes() == b"new"
    assert_outside_untouched(arena)


def test_xattrs_restored_and_file_capabilities_dropped(make_layout, tmp_path):
    layout = make_layout(files={"bin/tool": b"x"})
    try:
        os.setxattr(layout / "rootfs/bin/tool", "user.lab", b"kept")
    except OSError:
        pytest.skip("this file system has no user xattrs")
    out = tmp_path / "a.aci"
    aci.build(layout, out)
    aci.extract_rootfs(out, tmp_path / "x")
    assert os.getxattr(tmp_path / "x/bin/tool", "user.lab") == b"kept"


def test_write_failure_is_a_clear_error(make_layout, tmp_path):
    out = tmp_path / "a.aci"
    aci.build(make_layout(), out)
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(aci.SandboxError, match="failed|exists|directory"):
        aci.extract_rootfs(out, blocker / "sub")


def test_huge_metadata_header_is_refused(tmp_path, good_manifest, arena):
    bomb = tmp_path / "pax.aci"
    import gzip
    with gzip.open(bomb, "wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("manifest")
        ti.size = len(good_manifest)
        t.addfile(ti, io.BytesIO(good_manifest))
        ti = tarfile.TarInfo("rootfs")
        ti.type = tarfile.DIRTYPE
        ti.pax_headers = {"comment": "A" * (3 << 20)}   # 3 MiB of header, a few KiB compressed
        t.addfile(ti)
    assert bomb.stat().st_size < 64 << 10
    with pytest.raises(aci.ArchiveTooLarge, match="metadata header"):
        aci.extract_rootfs(bomb, arena["target"])
    assert any("metadata header" in p for p in aci.validate(bomb))
    assert not arena["target"].exists()
