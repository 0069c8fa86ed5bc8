"""Setuid files from an untrusted image are reachable by no other local user: the directories
holding image trees, clean copies and pods (overlay upper dirs, --no-overlay copies) are 0700,
and a state directory another user could write to is refused at start. Judged by a real
unprivileged process (uid 65534) trying to reach the files."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from sandbox import config
from sandbox.errors import SandboxError
from sandbox.image import aci

pytestmark = pytest.mark.root

NOBODY = 65534


def setuid_image(tmp_path: Path, name: str = "example.com/suid") -> Path:
    layout = tmp_path / "layout"
    (layout / "rootfs" / "bin").mkdir(parents=True)
    (layout / "rootfs" / "bin" / "rootshell").write_text("#!/bin/sh\nid\n")
    os.chmod(layout / "rootfs" / "bin" / "rootshell", 0o4755)
    (layout / "manifest").write_text(json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
        "app": {"exec": ["/bin/true"], "user": "0", "group": "0"},
        "dependencies": [{"imageName": "example.com/busybox"}]}))
    out = tmp_path / "suid.aci"
    aci.build(layout, out, owner_root=True)
    return out


def nobody_can_stat(path: Path) -> bool:
    """Whether uid/gid 65534 can reach ``path`` (a real process, not a mode calculation)."""
    p = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                        "stat", "-c", "%a", str(path)], capture_output=True, text=True)
    return p.returncode == 0


@pytest.fixture
def traversable(lab_state: Path):
    """Open the way to the state dir for other users (o+x on each ancestor, as /var/lib is), so
    only the kit's own modes can keep uid 65534 out; a control file proves the way is open."""
    changed = []
    p = lab_state
    while p != p.parent:
        mode = stat.S_IMODE(os.stat(p).st_mode)
        if mode & 0o001 == 0:
            os.chmod(p, mode | 0o011)
            changed.append((p, mode))
        p = p.parent
    os.chmod(lab_state, 0o755)          # traversable, as /var/lib/sandbox is (0755)
    control = lab_state / "control"
    control.write_text("x")
    assert nobody_can_stat(control), "the control file must be reachable"
    try:
        yield lab_state
    finally:
        control.unlink()
        for q, mode in changed:
            os.chmod(q, mode)


def ancestors_private(path: Path, stop: Path) -> bool:
    """Some directory between ``stop`` (excluded) and ``path`` is 0700 or tighter."""
    p = path.parent
    while p != stop and p != p.parent:
        if stat.S_IMODE(os.stat(p).st_mode) & 0o077 == 0:
            return True
        p = p.parent
    return False


@pytest.mark.parametrize("overlay", [False, True], ids=["no-overlay", "overlay"])
def test_pod_copies_and_upper_dirs_are_out_of_reach(traversable: Path, tmp_path: Path,
                                                    overlay: bool) -> None:
    lab_state = traversable
    from sandbox.image.store import Store
    from sandbox.pod import stage0 as pod
    from sandbox.render import treestore
    store = Store()
    store.import_aci(setuid_image(tmp_path))
    p = pod.prepare(store, ["example.com/suid"], net=["none"], overlay=overlay,
                    exec_={0: ["/bin/sh", "-c", "touch /bin/written-by-the-app"]})
    try:
        app_dir = p.path / "apps" / "suid"
        tree = treestore.render_image(store, "example.com/suid")
        shell = tree.rootfs / "bin" / "rootshell"
        assert os.stat(shell).st_mode & stat.S_ISUID      # kept in the tree (it is the image's)
        assert not nobody_can_stat(shell)
        if not overlay:
            copy = app_dir / "rootfs" / "bin" / "rootshell"
            assert os.stat(copy).st_mode & stat.S_ISUID
            assert not nobody_can_stat(copy)
        assert pod.run_prepared(p.uuid) == 0
        _, d = pod.find(p.uuid)
        written = d / "apps" / "suid" / ("upper" if overlay else "rootfs") / "bin" / "written-by-the-app"
        assert written.exists() and not nobody_can_stat(written)
        for sub in ("trees", "pods"):
            assert stat.S_IMODE(os.stat(lab_state / sub).st_mode) == 0o700
        assert ancestors_private(written, lab_state)
    finally:
        pod.remove(p.uuid)


def test_clean_copies_are_out_of_reach_and_user_dirs_mounted_nosuid(traversable: Path,
                                                                    tmp_path: Path) -> None:
    from sandbox.image.store import Store
    from sandbox.render import treestore
    store = Store()
    store.import_aci(setuid_image(tmp_path, "example.com/suid-copy"))
    tree = treestore.render_image(store, "example.com/suid-copy")
    with treestore.clean_copy(tree, overlay=False) as copy:     # under $SANDBOX_DIR/copies
        shell = copy.path / "bin" / "rootshell"
        assert os.stat(shell).st_mode & stat.S_ISUID and not nobody_can_stat(shell)
    target = tmp_path / "shared" / "copy"                       # a directory the user named
    target.parent.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(target.parent, 0o755)
    with treestore.clean_copy(tree, target, overlay=True) as copy:
        line = next(l for l in open("/proc/self/mountinfo") if l.split()[4] == str(target))
        assert {"nosuid", "nodev"} <= set(line.split()[5].split(","))
        assert not nobody_can_stat(copy.upper)


def test_a_state_dir_others_can_write_is_refused(sandbox_dir: Path, tmp_path: Path) -> None:
    from sandbox.render import treestore
    os.chmod(sandbox_dir, 0o777)
    config._checked.clear()
    with pytest.raises(SandboxError, match="writable by other users.*chmod go-w"):
        config.private_dir("trees")
    assert not (sandbox_dir / "trees").exists()
    os.chmod(sandbox_dir, 0o755)
    os.chown(sandbox_dir, NOBODY, NOBODY)
    config._checked.clear()
    with pytest.raises(SandboxError, match="belongs to user 65534"):
        treestore.clean_copy(None, None)                 # refused before anything else is used
    os.chown(sandbox_dir, 0, 0)
    config._checked.clear()


def test_dirs_an_older_kit_made_0755_are_tightened(sandbox_dir: Path) -> None:
    for sub in ("trees", "copies", "pods"):
        (sandbox_dir / sub).mkdir(mode=0o755)
        os.chmod(sandbox_dir / sub, 0o755)
        config.private_dir(sub)
        assert stat.S_IMODE(os.stat(sandbox_dir / sub).st_mode) == 0o700
    os.rmdir(sandbox_dir / "pods")
    os.symlink("/tmp", sandbox_dir / "pods")
    with pytest.raises(SandboxError, match="not a directory of yours"):
        config.private_dir("pods")
