"""A clean copy for every execution (ace.md §Filesystem Setup): overlayfs or a plain copy; writes
never reach the tree or the next execution; everything is unmounted and removed."""
from __future__ import annotations

import os
import subprocess

import pytest
from renderkit import dep, snapshot

from sandbox.render import treestore


def mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


@pytest.fixture
def tree(sb):
    sb.add("base", {"/bin/sh": ("file", "sh", 0o755), "/etc/motd": "hello", "/var/log": ("dir",)})
    sb.add("app", {"/app/run": ("file", "run", 0o755)}, deps=[dep("base")])
    t = treestore.render_image(sb.store, "app")
    yield t
    treestore.close_all()


def _execution(copy: treestore.CleanCopy, n: int) -> None:
    # what an app does: read, write a new file, change one, delete one
    assert (copy.path / "etc/motd").read_text() == "hello"
    (copy.path / "etc/motd").write_text(f"changed by run {n}")
    (copy.path / "var/log" / f"run{n}.log").write_text("log")
    (copy.path / "bin/sh").unlink()


@pytest.mark.root
@pytest.mark.parametrize("overlay", [True, False], ids=["overlay", "copy"])
def test_executions_are_isolated_from_each_other_and_the_tree(tree, overlay) -> None:
    before = snapshot(tree.rootfs)
    seen = []
    for n in (1, 2):
        with treestore.clean_copy(tree, overlay=overlay) as copy:
            assert copy.mode == ("overlay" if overlay else "copy")
            assert (str(copy.path) in mounts()) == overlay
            assert snapshot(copy.path) == before  # starts clean, every time
            _execution(copy, n)
            seen.append(copy.changes())
        assert not copy.path.exists() and not copy.state.exists()
        assert str(copy.path) not in mounts()
    assert snapshot(tree.rootfs) == before
    assert treestore.verify(None, tree.image_id) == []
    assert seen[0] == {"/bin/sh": "deleted", "/etc/motd": "changed", "/var/log/run1.log": "added"}
    assert seen[1] == {"/bin/sh": "deleted", "/etc/motd": "changed", "/var/log/run2.log": "added"}
    assert treestore.active_copies() == []


@pytest.mark.root
def test_overlay_is_really_an_overlay_mount(tree) -> None:
    with treestore.clean_copy(tree) as copy:
        assert copy.mode == "overlay"
        line = next(l for l in open("/proc/self/mountinfo") if l.split()[4] == str(copy.path))
        fstype = line.split(" - ")[1].split()[0]
        assert fstype == "overlay"
        assert f"lowerdir={tree.rootfs}" in line and f"upperdir={copy.upper}" in line
        (copy.path / "new").write_text("x")
        assert (copy.upper / "new").read_text() == "x"   # writes land in this execution's upper
        assert not (tree.rootfs / "new").exists()


@pytest.mark.root
def test_copy_into_a_given_directory_and_cleanup_on_failure(tree, tmp_path) -> None:
    target = tmp_path / "sbx-target"
    with pytest.raises(RuntimeError):
        with treestore.clean_copy(tree, target) as copy:
            assert str(target) in mounts()
            raise RuntimeError("the app crashed")
    assert str(target) not in mounts() and not target.exists() and not copy.state.exists()
    target.mkdir()
    (target / "x").write_text("x")
    with pytest.raises(Exception, match="empty directory"):
        treestore.clean_copy(tree, target)
    assert treestore.active_copies() == []


@pytest.mark.root
def test_close_all_unmounts_copies_left_open(tree) -> None:
    a = treestore.clean_copy(tree)
    b = treestore.clean_copy(tree, overlay=False)
    assert {c["path"] for c in treestore.active_copies()} == {str(a.path), str(b.path)}
    assert treestore.find_copy(a.path).mode == "overlay"
    closed = treestore.close_all()
    assert set(closed) == {str(a.path), str(b.path)}
    assert str(a.path) not in mounts() and not a.path.exists() and not b.path.exists()


@pytest.mark.root
def test_chroot_into_the_copy_runs_and_stays_private(sb) -> None:
    busybox = "/bin/busybox"
    if not os.path.exists(busybox):
        pytest.skip("Debian busybox-static is not installed")
    data = open(busybox, "rb").read()
    sb.add("bb", {"/bin/busybox": ("file", data, 0o755), "/bin/sh": ("symlink", "busybox")})
    t = treestore.render_image(sb.store, "bb")
    try:
        for n in (1, 2):
            with treestore.clean_copy(t) as copy:
                out = subprocess.run(
                    ["chroot", str(copy.path), "/bin/sh", "-c",
                     "ls /tmp-run 2>/dev/null; mkdir -p /tmp-run; echo run > /tmp-run/mark; echo ok"],
                    capture_output=True, text=True, check=True).stdout
                assert out == "ok\n"  # the previous execution's file is not there
    finally:
        treestore.close_all()


@pytest.mark.root
def test_falls_back_to_a_plain_copy_when_overlay_cannot_mount(tree, monkeypatch) -> None:
    import errno as _errno

    def refuse(*a, **k):
        raise OSError(_errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(treestore.libc, "mount", refuse)
    with treestore.clean_copy(tree) as copy:
        assert copy.mode == "copy" and "overlay mount failed" in copy.reason
        assert snapshot(copy.path) == snapshot(tree.rootfs)
    with pytest.raises(Exception, match="overlay mount .* failed"):
        treestore.clean_copy(tree, overlay=True)
    assert treestore.active_copies() == []
