"""The in-root resolver (sandbox/_sys/inroot.py), both ways: openat2(RESOLVE_IN_ROOT) and the
O_NOFOLLOW walk it falls back to. Every case is judged on the file system: what the resolver
reached is compared by inode with what the tree holds, and a canary directory outside the tree
must keep its contents, mode and owner."""
from __future__ import annotations

import ctypes
import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from sandbox._sys import inroot, libc

KERNEL = tuple(int(x) for x in os.uname().release.split(".")[:2])


@pytest.fixture(params=["openat2", "walk"])
def mode(request: pytest.FixtureRequest):
    old = inroot.force_walk(request.param == "walk")
    try:
        if request.param == "openat2":
            # this machine's kernel has it (>= 5.6): the openat2 path must really be the one used
            assert KERNEL < (5, 6) or inroot.openat2_available()
        else:
            assert not inroot.openat2_available()
        yield request.param
    finally:
        inroot.force_walk(old)


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """root/ (the image's tree, full of hostile links) next to host/ (a canary)."""
    host = tmp_path / "host"
    (host / "sub").mkdir(parents=True)
    (host / "passwd").write_text("HOST\n")
    os.chmod(host, 0o750)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("tree\n")
    os.symlink(str(host), root / "abs")                   # absolute, to the host
    os.symlink("../../../../../../../..", root / "up")   # relative, climbing
    os.symlink("/etc", root / "e")                        # absolute, meaning the tree's /etc
    os.symlink("/nowhere/deep", root / "dangling")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink("e", root / "chain")                       # a chain: chain -> e -> /etc
    return {"root": root, "host": host, "tmp": tmp_path}


def canary(w: dict[str, Path]) -> tuple:
    h = w["host"]
    st = os.stat(h)
    return (sorted(os.listdir(h)), (h / "passwd").read_text(), stat.S_IMODE(st.st_mode),
            st.st_uid, st.st_gid, sorted(os.listdir(w["tmp"])))


def same(fd: int, path: Path) -> bool:
    a, b = os.fstat(fd), os.lstat(path)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@pytest.mark.parametrize("path", ["/etc/passwd", "etc/passwd", "../../etc/passwd", "/../etc/passwd",
                                  "e/passwd", "chain/passwd", "up/etc/passwd", "up/up/e/passwd",
                                  "/e/../etc/passwd", "e/../../e/passwd"])
def test_every_spelling_reaches_the_trees_file(mode, world, path) -> None:
    before = canary(world)
    with inroot.Root(world["root"]) as r:
        fd = r.open(path)
        try:
            assert same(fd, world["root"] / "etc" / "passwd")
        finally:
            os.close(fd)
        assert r.read(path, 100) == b"tree\n"
    assert canary(world) == before


def test_an_absolute_link_to_a_host_path_stays_in_the_tree(mode, world) -> None:
    before = canary(world)
    with inroot.Root(world["root"]) as r:
        with pytest.raises(FileNotFoundError):          # <tree>/<host path> does not exist
            r.open("abs/passwd")
        fd = r.mkdirs("abs/sub/new")                    # made inside the tree
        os.close(fd)
    assert (world["root"] / str(world["host"]).lstrip("/") / "sub" / "new").is_dir()
    assert canary(world) == before


def test_follow_false_refuses_every_link(mode, world) -> None:
    with inroot.Root(world["root"]) as r:
        for p in ("e/passwd", "abs", "up/etc", "chain"):
            with pytest.raises(OSError) as e:
                os.close(r.open(p, follow=False))
            assert e.value.errno == errno.ELOOP
        # a literal absolute path is still the tree's (NO_SYMLINKS alone would open the host's)
        fd = r.open("/etc/passwd", follow=False)
        assert same(fd, world["root"] / "etc" / "passwd")
        os.close(fd)
        fd = r.open("e", os.O_PATH | os.O_NOFOLLOW)     # the link itself
        assert stat.S_ISLNK(os.fstat(fd).st_mode)
        os.close(fd)


def test_loops_and_dangling_links(mode, world) -> None:
    before = canary(world)
    with inroot.Root(world["root"]) as r:
        with pytest.raises(OSError) as e:
            r.open("loop1/x")
        assert e.value.errno == errno.ELOOP
        fd = r.mkdirs("dangling/x")                     # the link's target is made in the tree
        assert same(fd, world["root"] / "nowhere" / "deep" / "x")
        os.close(fd)
        fd = r.create("dangling2")
        assert fd is not None
        os.close(fd)
        os.symlink("/made/by/link", world["root"] / "etc" / "hosts")
        assert r.create("/etc/hosts") is None           # a link is there: not written through
        assert not (world["root"] / "made").exists()
        fd = r.create("/e/new")                         # directories resolve in the tree
        os.close(fd)
        assert (world["root"] / "etc" / "new").is_file()
        assert r.create("/etc/passwd") is None          # something is there: nothing replaced
        assert r.create("/e/passwd") is None
    assert (world["root"] / "etc" / "passwd").read_text() == "tree\n"
    assert canary(world) == before


def test_read_is_for_regular_files_only_and_bounded(mode, world) -> None:
    root = world["root"]
    os.mkfifo(root / "fifo")
    os.symlink("/fifo", root / "etc" / "group")
    (root / "big").write_bytes(b"x" * 5000)
    with inroot.Root(root) as r:
        got: list = []
        t = threading.Thread(target=lambda: got.append(_catch(r.read, "/etc/group", 100)))
        t.start()
        t.join(5)
        assert not t.is_alive(), "reading a FIFO blocked"
        assert got[0].errno == errno.EINVAL
        assert _catch(r.read, "big", 4999).errno == errno.EFBIG
        assert r.read("big", 5000) == b"x" * 5000
        with pytest.raises(FileNotFoundError):         # /dev/zero of the tree: not there
            os.symlink("/dev/zero", root / "zero")
            r.read("zero", 10)


def _catch(fn, *a):
    try:
        fn(*a)
    except OSError as e:
        return e
    raise AssertionError("no error")


@pytest.mark.root
def test_a_device_node_in_the_tree_is_never_opened_for_reading(mode, world) -> None:
    os.mknod(world["root"] / "zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    with inroot.Root(world["root"]) as r:
        assert _catch(r.read, "zero", 10).errno == errno.EINVAL


def test_modes_and_owners_go_through_descriptors(mode, world) -> None:
    root = world["root"]
    with inroot.Root(root) as r:
        fd = r.open("etc/passwd")                       # an O_PATH fd: fchmod would give EBADF
        inroot.chmod_fd(fd, 0o604)
        inroot.chown_fd(fd, 4321, 8765)
        os.close(fd)
        st = os.stat(root / "etc" / "passwd")
        assert stat.S_IMODE(st.st_mode) == 0o604 and (st.st_uid, st.st_gid) == (4321, 8765)
        fd = r.open("abs", os.O_PATH | os.O_NOFOLLOW)   # the link itself
        with pytest.raises(OSError):
            inroot.chmod_fd(fd, 0o777)                  # would follow it to the host
        inroot.chown_fd(fd, 4321, 8765)                 # lchown semantics
        os.close(fd)
    assert os.lstat(root / "abs").st_uid == 4321
    st = os.stat(world["host"])
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == os.geteuid()


def test_openat2_failures_fall_back_to_the_walk_and_eagain_is_retried(monkeypatch, world) -> None:
    real = inroot._libc.syscall
    calls = {"n": 0}

    class Fake:
        def __getattr__(self, name):
            return getattr(inroot._libc_real, name)

        def syscall(self, nr, *a):
            if nr.value == 437:
                calls["n"] += 1
                if calls["n"] <= 3:                     # a rename raced a ".." three times
                    ctypes.set_errno(errno.EAGAIN)
                    return -1
            return real(nr, *a)

    monkeypatch.setattr(inroot, "_libc_real", inroot._libc, raising=False)
    monkeypatch.setattr(inroot, "_libc", Fake())
    old = inroot.force_walk(False)
    try:
        if not inroot.openat2_available():
            pytest.skip("no openat2 on this kernel: the retry cannot be shown")
        with inroot.Root(world["root"]) as r:
            assert r.read("e/passwd", 10) == b"tree\n"
        assert calls["n"] >= 4

        class NoSys(Fake):
            def syscall(self, nr, *a):
                if nr.value == 437:
                    ctypes.set_errno(errno.ENOSYS)      # a kernel before 5.6
                    return -1
                return real(nr, *a)

        monkeypatch.setattr(inroot, "_libc", NoSys())
        monkeypatch.setattr(inroot, "_openat2_state", [])
        assert not inroot.openat2_available()
        with inroot.Root(world["root"]) as r:
            assert r.read("up/e/passwd", 10) == b"tree\n"
    finally:
        inroot.force_walk(old)


def _in_child(fn) -> int:
    """Run ``fn`` in a forked child with its own mount namespace; its exit code."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            libc.unshare(libc.CLONE_NEWNS)
            libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
            code = fn()
        except BaseException as e:  # noqa: BLE001
            os.write(2, f"child: {e!r}\n".encode())
        finally:
            os._exit(code)
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st)


@pytest.mark.root
def test_magic_links_are_never_followed_out_of_the_tree(mode, world) -> None:
    """With /proc mounted in the tree (as stage1 has it before pivot_root), a link through
    /proc/self/root would take the kernel to the real root; neither path goes there."""
    root = world["root"]
    (root / "proc").mkdir()
    os.symlink(f"/proc/self/root{world['host']}", root / "magic")

    def child() -> int:
        libc.mount("proc", str(root / "proc"), "proc", 0)
        with inroot.Root(root) as r:
            try:
                fd = r.open("magic/passwd")
            except OSError as e:        # openat2: ELOOP (NO_MAGICLINKS); walk: not in the tree
                return 0 if e.errno in (errno.ELOOP, errno.ENOENT) else 3
            reached = os.fstat(fd)
            host = os.stat(world["host"] / "passwd")
            return 4 if (reached.st_dev, reached.st_ino) == (host.st_dev, host.st_ino) else 0

    before = canary(world)
    assert _in_child(child) == 0
    assert canary(world) == before


@pytest.mark.root
def test_a_mount_on_a_descriptor_is_not_redirected_by_a_later_swap(mode, world) -> None:
    """The target is resolved to an fd, then the directory is swapped for a link to the host:
    the bind mount made on /proc/self/fd/N still lands on the directory the fd holds."""
    root = world["root"]
    (root / "data").mkdir()
    src = world["tmp"] / "volume"
    src.mkdir()
    (src / "from-volume").write_text("v")

    def child() -> int:
        with inroot.Root(root) as r:
            fd = r.mkdirs("/data")
            os.rename(root / "data", root / "data.moved")
            os.symlink(str(world["host"]), root / "data")
            libc.mount(str(src), inroot.proc_path(fd), None, libc.MS_BIND)
            os.close(fd)
        if os.listdir(world["host"]) != sorted(["passwd", "sub"]) and \
                sorted(os.listdir(world["host"])) != ["passwd", "sub"]:
            return 5
        return 0 if os.listdir(root / "data.moved") == ["from-volume"] else 6

    before = canary(world)
    assert _in_child(child) == 0
    assert canary(world) == before
