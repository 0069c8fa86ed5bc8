"""The few Linux system calls Python 3.11 lacks, through ctypes (unshare, setns, mount, umount2,
pivot_root, prctl, capset), and the one handle on libc the kit loads (``sandbox._sys.inroot``
makes its calls through it too). Errors are raised as the matching ``OSError`` subclass
(``PermissionError``, ``FileNotFoundError``…) with the call and its arguments in the message.

man pages: unshare(2), setns(2), mount(2), umount(2), pivot_root(2), mount_setattr(2).
"""
from __future__ import annotations

import ctypes
import errno
import os

# CDLL(None): libc's symbols through the running interpreter. (ctypes.util.find_library would
# run ldconfig in a subprocess - fatal in a process that has just unshared CLONE_NEWPID, whose
# first child becomes the namespace's PID 1.)
_libc = ctypes.CDLL(None, use_errno=True)

# clone(2) / unshare(2) namespace flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20

# mount_setattr(2) attributes (uapi/linux/mount.h) and flags
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
# statvfs(3) f_flag bits that mean the same as the MS_* flags of the same value
_ST_KEEP = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC

# netdevice(7): interface flags, and the ioctls that read and set them
IFF_UP = 0x1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914

# umount2(2) flags
MNT_FORCE = 0x1
MNT_DETACH = 0x2


def _check(ret: int, call: str) -> int:
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{call}: {os.strerror(err)}")
    return ret


def unshare(flags: int) -> None:
    """Move the calling thread/process into new namespaces (unshare(2))."""
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that ``fd`` (an open /proc/…/ns/* file) refers to (setns(2))."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({fd}, {nstype:#x})")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2). ``source``/``fstype``/``data`` may be None."""
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount({source!r}, {target!r}, {fstype!r}, {flags:#x}, {data!r})")


def umount(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(os.fsencode(target), ctypes.c_int(flags)), f"umount2({target!r}, {flags:#x})")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def restrict_mount(fd: int, attrs: int, *, recursive: bool) -> None:
    """Add ``attrs`` (``MOUNT_ATTR_*``: read-only, nodev…) to the mount whose root ``fd`` holds
    and, with ``recursive``, to every mount below it, keeping the flags each already has.

    mount_setattr(2) (Linux 5.12) does it in one call. Where it is missing (ENOSYS, or EPERM
    from a seccomp filter), each mount is remounted on its own, with the flags statvfs(3)
    reports added: a bind remount sets exactly the flags it is given (so they are kept), and
    mount(2) ignores MS_REC on a remount (a recursive bind's submounts need their own)."""
    from sandbox._sys import platform
    attr = _MountAttr(attrs, 0, 0, 0)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    if _libc.syscall(ctypes.c_long(platform.SYS_MOUNT_SETATTR), ctypes.c_int(fd), b"",
                     ctypes.c_uint(flags), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))) == 0:
        return
    err = ctypes.get_errno()
    if err not in (errno.ENOSYS, errno.EPERM):
        raise OSError(err, f"mount_setattr({fd}, {attrs:#x}): {os.strerror(err)}")
    points = [f"/proc/self/fd/{fd}"]
    if recursive:
        from sandbox._sys import mountinfo
        points += mountinfo.below(os.readlink(points[0]), include_root=False)
    for p in points:   # MOUNT_ATTR_RDONLY/NOSUID/NODEV/NOEXEC have the MS_* values
        keep = os.statvfs(p).f_flag & _ST_KEEP
        mount(None, p, None, MS_BIND | MS_REMOUNT | keep | attrs)


PR_SET_PDEATHSIG = 1


def parent_death_signal(sig: int) -> None:
    """prctl(PR_SET_PDEATHSIG): get ``sig`` when the *thread* that forked this process ends
    (for a child started from a kernel's or a test's main thread: when that process dies)."""
    _check(_libc.prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(sig), ctypes.c_ulong(0),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)), f"prctl(PR_SET_PDEATHSIG, {sig})")


PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_bounding_cap(cap: int) -> None:
    """prctl(PR_CAPBSET_DROP): ``cap`` out of the bounding set for good. A number the running
    kernel does not know (EINVAL) is not in its set anyway."""
    if _libc.prctl(ctypes.c_int(PR_CAPBSET_DROP), ctypes.c_ulong(cap), ctypes.c_ulong(0),
                   ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        if err != errno.EINVAL:
            raise OSError(err, f"prctl(PR_CAPBSET_DROP, {cap}): {os.strerror(err)}")


def no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS): execve never grants privileges again (setuid bits, file caps)."""
    _check(_libc.prctl(ctypes.c_int(PR_SET_NO_NEW_PRIVS), ctypes.c_ulong(1), ctypes.c_ulong(0),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl(PR_SET_NO_NEW_PRIVS)")


def capset(caps: set[int]) -> None:
    """capset(2), version 3: exactly ``caps`` effective and permitted, none inheritable."""
    lo = sum(1 << c for c in caps if c < 32)
    hi = sum(1 << (c - 32) for c in caps if c >= 32)
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(_CapData(lo, lo, 0), _CapData(hi, hi, 0))
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make ``new_root`` the root, moving the old root to ``put_old``."""
    from sandbox._sys import platform
    nr = platform.host().pivot_root   # glibc has no wrapper; the number differs per architecture
    _check(_libc.syscall(ctypes.c_long(nr), os.fsencode(new_root), os.fsencode(put_old)),
           f"pivot_root({new_root!r}, {put_old!r})")


def ns_inode(path: str) -> int:
    """The inode number that identifies a namespace, e.g. ``ns_inode('/proc/self/ns/net')``."""
    return os.stat(path).st_ino


def open_ns(path: "str | os.PathLike[str]") -> int:
    """A descriptor for the namespace handle at ``path`` (``/run/netns/NAME``, ``/proc/PID/ns/net``),
    for setns(2) or ioctl_ns(2). It never blocks and opens nothing but a file: a FIFO named where
    a handle should be kept open(2) waiting for a writer for ever (``sandbox net add NET FIFO``,
    a CNI plugin given it as CNI_NETNS), and a device would be opened for real. A handle is an
    nsfs file, which stat(2) calls a regular file; anything else is EINVAL here.

    The path is resolved once, to an O_PATH descriptor (which opens nothing), and the file it
    names is checked and then opened through that descriptor's /proc/self/fd link: a FIFO or
    device put at ``path`` after the check is never the one opened."""
    import stat
    found = os.open(path, os.O_PATH | os.O_CLOEXEC)    # follows links: /proc/PID/ns/net is one
    try:
        if not stat.S_ISREG(os.fstat(found).st_mode):
            raise OSError(errno.EINVAL, "not a namespace handle", os.fspath(path))
        # setns(2) and ioctl_ns(2) need the file open for real, not an O_PATH descriptor
        return os.open(f"/proc/self/fd/{found}",
                       os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    finally:
        os.close(found)
