"""Paths resolved *inside* a directory tree that an image controls, and metadata set on file
descriptors — the kit's one in-root path resolver (see docs/security.md).

An image's rootfs is written by an untrusted author: any component of a path in it may be a
symlink to ``/etc`` or ``../../..``, and the host-side code (render, stage1 before
``pivot_root``, user lookup, OCI layers) runs as root. So every path into such a tree is resolved
as the container itself would see it, with the tree as ``/``:

* ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` (Linux >= 5.6, openat2(2)): the kernel
  treats the tree's directory as the root for ``..`` and for absolute symlinks, and refuses
  ``/proc/self/…``-style magic links. Probed once per process; ENOSYS, EPERM (a seccomp filter)
  or EINVAL fall back to
* a component-by-component walk: each component opened ``O_PATH | O_NOFOLLOW`` relative to its
  parent's descriptor, a symlink read as text and spliced into the rest of the path (an absolute
  one restarts at the tree's root, ``..`` never climbs above it). The kernel never follows a
  link here, so a magic link is just text resolved in the tree as well.

``follow=False`` refuses every symlink on the way (ELOOP) — what extraction wants: it never
writes through a link, whatever it points at. Results are file descriptors; modes, owners and
mounts are applied to them (``fchownat(AT_EMPTY_PATH)``, ``fchmodat2`` or ``/proc/self/fd/N``),
so a symlink swapped in after the lookup cannot redirect the operation.

Errors are ``OSError`` subclasses with the path in the message; callers turn them into sentences.
Kept free of ``typing`` (stage1 imports this on every pod start).
"""
from __future__ import annotations

import ctypes
import errno
import os
import stat

from sandbox._sys import libc

# uapi/linux/openat2.h
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
# uapi/linux/fcntl.h
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = libc.AT_EMPTY_PATH

MAXSYMLINKS = 40          # the kernel's limit on links followed in one lookup (ELOOP after it)
EAGAIN_RETRIES = 128      # openat2 gives EAGAIN when a rename races a ".." (filepath-securejoin's budget)
O_CLOEXEC = os.O_CLOEXEC
O_PATH = os.O_PATH

_libc = libc._libc                  # the kit's one handle on libc


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_openat2_state: list[bool] = []     # [] = not probed yet; [True]/[False] after the probe
_fchmodat2_state: list[bool] = []
_forced_walk = [os.environ.get("SANDBOX_NO_OPENAT2") == "1"]


def _err(code: int, what: str, path: str) -> OSError:
    return OSError(code, f"{what}: {os.strerror(code)}", path)


def _openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    # imported here, not at the top: stage1 imports this module before it forks; the platform
    # table is only needed at the first call (in the app runner, which imported it at
    # pivot_root before this resolver existed)
    from sandbox._sys import platform
    how = _OpenHow(flags, mode, resolve)
    raw = os.fsencode(path)
    for _ in range(EAGAIN_RETRIES):
        fd = _libc.syscall(ctypes.c_long(platform.SYS_OPENAT2), ctypes.c_int(dirfd), raw,
                           ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        e = ctypes.get_errno()
        if e != errno.EAGAIN:       # EAGAIN: a concurrent rename or mount during ".."; retry
            raise _err(e, "openat2", path)
    raise _err(errno.EAGAIN, "openat2 (kept racing a rename)", path)


def openat2_available() -> bool:
    """Whether this process uses openat2 (probed once; ``SANDBOX_NO_OPENAT2=1`` or
    :func:`force_walk` make it use the O_NOFOLLOW walk instead)."""
    if _forced_walk[0]:
        return False
    if not _openat2_state:
        ok = True
        try:
            fd = _openat2(-100, "/", O_PATH | O_CLOEXEC, 0,      # AT_FDCWD
                          RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
            os.close(fd)
        except OSError as e:
            # ENOSYS: kernel < 5.6; EPERM: a seccomp filter (some container runtimes); EINVAL/
            # E2BIG: a kernel that does not know these flags. Anything else is unexpected.
            if e.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG):
                raise
            ok = False
        _openat2_state.append(ok)
    return _openat2_state[0]


def force_walk(on: bool = True) -> bool:
    """Use the O_NOFOLLOW walk even where openat2 exists (the tests prove both paths). Returns
    the previous setting."""
    old = _forced_walk[0]
    _forced_walk[0] = on
    return old


# ------------------------------------------------------------------------------ the walk


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _walk(root_fd: int, path: str, flags: int, mode: int, follow: bool, mkdirs: int | None) -> int:
    """Resolve ``path`` below ``root_fd`` as RESOLVE_IN_ROOT does, without the kernel ever
    following a link, and open the last component with ``flags``. ``mkdirs``: a mode to create
    missing directories with (the last one too when ``flags`` has O_DIRECTORY), or None."""
    todo = _split(path)
    todo.reverse()                  # a stack: the next component is todo[-1]
    stack: list[int] = []           # fds of the directories below the root, innermost last
    links = 0
    final_follow = not flags & os.O_NOFOLLOW
    try:
        while True:
            cur = stack[-1] if stack else root_fd
            if not todo:            # the path names the root or a directory reached via ".."
                return os.open(".", (flags & ~os.O_CREAT) | O_CLOEXEC, dir_fd=cur)
            name = todo.pop()
            if name == "..":        # never above the root: ".." of the root is the root
                if stack:
                    os.close(stack.pop())
                continue
            last = not todo
            try:
                fd = os.open(name, O_PATH | os.O_NOFOLLOW | O_CLOEXEC, dir_fd=cur)
            except FileNotFoundError:
                if last and flags & os.O_CREAT:
                    return os.open(name, flags | os.O_NOFOLLOW | O_CLOEXEC, mode, dir_fd=cur)
                if mkdirs is None or (last and not flags & os.O_DIRECTORY):
                    raise _err(errno.ENOENT, "no such file or directory", path) from None
                try:
                    os.mkdir(name, mkdirs, dir_fd=cur)
                except FileExistsError:
                    pass            # made meanwhile: look again
                todo.append(name)
                continue
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode) and (final_follow or not last):
                try:    # the link's text, read from the fd (the very link that was looked at)
                    target = os.readlink("", dir_fd=fd)
                finally:
                    os.close(fd)
                if not follow:
                    raise _err(errno.ELOOP, "a symbolic link on the way", path)
                links += 1
                if links > MAXSYMLINKS:
                    raise _err(errno.ELOOP, "too many symbolic links", path)
                if target.startswith("/"):      # absolute: from the tree's root
                    while stack:
                        os.close(stack.pop())
                parts = _split(target)
                parts.reverse()
                todo.extend(parts)
                continue
            if not last:
                if not stat.S_ISDIR(st.st_mode):
                    os.close(fd)
                    raise _err(errno.ENOTDIR, "not a directory on the way", path)
                stack.append(fd)
                continue
            if flags & os.O_DIRECTORY and not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise _err(errno.ENOTDIR, "not a directory", path)
            if flags & os.O_CREAT and flags & os.O_EXCL:
                os.close(fd)
                raise _err(errno.EEXIST, "already exists", path)
            if flags & O_PATH:
                return fd
            try:    # reopen for I/O from the parent; O_NOFOLLOW: it cannot have become a link
                return os.open(name, (flags & ~os.O_CREAT) | os.O_NOFOLLOW | O_CLOEXEC, dir_fd=cur)
            finally:
                os.close(fd)
    finally:
        for fd in stack:
            os.close(fd)


# ------------------------------------------------------------------------------ the resolver


def open_in(root_fd: int, path: str, flags: int = O_PATH, mode: int = 0, *,
            follow: bool = True) -> int:
    """An fd for ``path`` resolved inside the tree ``root_fd`` (absolute or relative, ``..``
    clamped at the tree's root). ``follow``: symlinks are resolved in the tree (False: any
    symlink on the way is ELOOP). ``O_NOFOLLOW`` in ``flags`` leaves a final symlink unfollowed
    (with O_PATH: an fd for the link itself). ``O_CREAT`` creates the last component."""
    flags |= O_CLOEXEC
    if openat2_available():
        resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | (0 if follow else RESOLVE_NO_SYMLINKS)
        return _openat2(root_fd, path, flags, mode if flags & os.O_CREAT else 0, resolve)
    return _walk(root_fd, path, flags, mode, follow, None)


def mkdirs_in(root_fd: int, path: str, mode: int = 0o755, *, follow: bool = True) -> int:
    """``mkdir -p`` inside the tree: an O_PATH fd for the directory ``path`` (resolved as
    :func:`open_in` does), creating each missing component with ``mode`` (umask applies)."""
    try:
        return open_in(root_fd, path, O_PATH | os.O_DIRECTORY, follow=follow)
    except FileNotFoundError:
        return _walk(root_fd, path, O_PATH | os.O_DIRECTORY | O_CLOEXEC, 0, follow, mode)


def create_in(root_fd: int, path: str, mode: int = 0o644, *, dir_mode: int = 0o755,
              follow: bool = True) -> int | None:
    """Create the regular file ``path`` inside the tree (its directories too, resolved in the
    tree) and return an fd open for writing; None when anything is already there, a link
    included (nothing is replaced or written through)."""
    parent, _, leaf = path.rstrip("/").rpartition("/")
    if leaf in ("", ".", ".."):
        return None
    pfd = mkdirs_in(root_fd, parent or "/", dir_mode, follow=follow)
    try:
        return os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | O_CLOEXEC,
                       mode, dir_fd=pfd)
    except FileExistsError:
        return None
    finally:
        os.close(pfd)


def read_in(root_fd: int, path: str, limit: int) -> bytes:
    """The content of the regular file ``path`` inside the tree, at most ``limit`` bytes.

    Only a regular file is opened for reading (a FIFO would block, ``/dev/zero`` never ends, a
    device may act on open): the path is resolved to an O_PATH fd first, its type checked, and
    only then reopened through ``/proc/self/fd``. More than ``limit`` bytes: EFBIG."""
    fd = open_in(root_fd, path, O_PATH)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _err(errno.EINVAL, "not a regular file", path)
        if st.st_size > limit:
            raise _err(errno.EFBIG, f"larger than {limit} bytes", path)
        rfd = os.open(proc_path(fd), os.O_RDONLY | os.O_NOCTTY | O_CLOEXEC)
    finally:
        os.close(fd)
    with os.fdopen(rfd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _err(errno.EFBIG, f"larger than {limit} bytes", path)
    return data


def stat_in(root_fd: int, path: str, *, follow: bool = True) -> os.stat_result:
    """stat(2) of ``path`` inside the tree (symlinks resolved in the tree)."""
    fd = open_in(root_fd, path, O_PATH | (0 if follow else os.O_NOFOLLOW), follow=True)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------ fd metadata


def proc_path(fd: int) -> str:
    """``/proc/self/fd/N``: a path the kernel resolves to exactly the object ``fd`` holds (a
    mount target that a later symlink swap cannot redirect)."""
    return f"/proc/self/fd/{fd}"


def chown_fd(fd: int, uid: int, gid: int) -> None:
    """fchownat(fd, "", uid, gid, AT_EMPTY_PATH): works on O_PATH fds, symlinks included."""
    if _libc.fchownat(ctypes.c_int(fd), b"", ctypes.c_uint(uid & 0xFFFFFFFF),
                      ctypes.c_uint(gid & 0xFFFFFFFF), ctypes.c_int(AT_EMPTY_PATH)) != 0:
        e = ctypes.get_errno()
        raise _err(e, f"fchownat({fd}, AT_EMPTY_PATH)", proc_path(fd))


def chmod_fd(fd: int, mode: int) -> None:
    """chmod of the object ``fd`` holds, O_PATH fds included: fchmodat2(AT_EMPTY_PATH) (Linux
    >= 6.6), else through ``/proc/self/fd/N`` (glibc's fchmodat gives EINVAL for this). Never a
    symlink (a link's mode means nothing, and chmod would follow it)."""
    if stat.S_ISLNK(os.fstat(fd).st_mode):
        raise _err(errno.ELOOP, "chmod of a symbolic link", proc_path(fd))
    if _forced_walk[0] or _fchmodat2_state == [False]:
        os.chmod(proc_path(fd), mode)
        return
    from sandbox._sys import platform    # at first use (see _openat2)
    r = _libc.syscall(ctypes.c_long(platform.SYS_FCHMODAT2), ctypes.c_int(fd), b"",
                      ctypes.c_uint(mode), ctypes.c_int(AT_EMPTY_PATH))
    if r == 0:
        if not _fchmodat2_state:
            _fchmodat2_state.append(True)
        return
    e = ctypes.get_errno()
    if e in (errno.ENOSYS, errno.EPERM, errno.EINVAL) and not _fchmodat2_state:
        _fchmodat2_state.append(False)
        os.chmod(proc_path(fd), mode)
        return
    raise _err(e, f"fchmodat2({fd}, AT_EMPTY_PATH)", proc_path(fd))


class Root:
    """A tree opened once (an O_PATH fd of its top directory); paths given to its methods are
    resolved inside it. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.fd = os.open(self.path, O_PATH | os.O_DIRECTORY | O_CLOEXEC)

    def open(self, path: str, flags: int = O_PATH, mode: int = 0, *, follow: bool = True) -> int:
        return open_in(self.fd, path, flags, mode, follow=follow)

    def mkdirs(self, path: str, mode: int = 0o755, *, follow: bool = True) -> int:
        return mkdirs_in(self.fd, path, mode, follow=follow)

    def create(self, path: str, mode: int = 0o644, *, follow: bool = True) -> int | None:
        return create_in(self.fd, path, mode, follow=follow)

    def read(self, path: str, limit: int) -> bytes:
        return read_in(self.fd, path, limit)

    def stat(self, path: str, *, follow: bool = True) -> os.stat_result:
        return stat_in(self.fd, path, follow=follow)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Root":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
