"""The mount table, read in one place: ``/proc/PID/mountinfo`` (proc(5)).

Each line is ``ID PARENT MAJ:MIN ROOT TARGET OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPER_OPTIONS``.
The kernel escapes space, tab, newline and backslash in paths as ``\\ooo`` (octal) and writes
every other byte as it is — so the file is read as *bytes*, unescaped as bytes, and decoded the
way ``os`` decodes paths (``os.fsdecode``): a mount point whose name is not ASCII compares equal to
the ``str`` path Python gives for it.
"""
from __future__ import annotations

import errno
import os
import re
from collections import namedtuple

_OCTAL = re.compile(rb"\\([0-7]{3})")


class Mount(namedtuple("Mount", "mount_id parent_id root target options optional fstype source "
                                "super_options", defaults=("",))):
    """One mount: ``target`` is where it is mounted, ``root`` the directory of its filesystem
    that appears there (bind mounts), ``optional`` the propagation fields (``shared:N``…),
    ``super_options`` the filesystem's own (a cgroup v1 mount names its controllers there)."""
    __slots__ = ()


def unescape(field: bytes) -> str:
    """A mountinfo path field as a Python path string (``\\040`` → space)."""
    return os.fsdecode(_OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), field))


def parse(data: bytes) -> list[Mount]:
    """Every well-formed line of a mountinfo file (a line the kernel never writes is skipped)."""
    out = []
    for line in data.splitlines():
        left, sep, right = line.partition(b" - ")
        f, r = left.split(b" "), right.split(b" ")
        if not sep or len(f) < 6:
            continue
        out.append(Mount(int(f[0]), int(f[1]), unescape(f[3]), unescape(f[4]), f[5].decode(),
                         tuple(x.decode() for x in f[6:]), r[0].decode(),
                         unescape(r[1]) if len(r) > 1 else "",
                         r[2].decode(errors="replace") if len(r) > 2 else ""))
    return out


def mounts(pid: int | str = "self") -> list[Mount]:
    """The mount table of ``pid``'s mount namespace, paths as that process sees them; empty when
    the process is gone."""
    try:
        with open(f"/proc/{pid}/mountinfo", "rb") as f:
            return parse(f.read())
    except (FileNotFoundError, ProcessLookupError):
        return []
    except OSError as e:
        # a process that is exiting has no mount namespace left: the kernel answers EINVAL
        if e.errno == errno.EINVAL:
            return []
        raise


def mount_points(pid: int | str = "self") -> set[str]:
    return {m.target for m in mounts(pid)}


def is_mount_point(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path) in mount_points()


def containing(path: str | os.PathLike[str]) -> Mount | None:
    """The mount that holds ``path`` (symlinks resolved): the one whose target is the longest
    prefix of it (the last such in the table: mounts stacked on one point hide the earlier)."""
    r = os.path.realpath(path)
    best: Mount | None = None
    for m in mounts():
        t = m.target
        if r == t or r.startswith(t.rstrip("/") + "/"):
            if best is None or len(t) >= len(best.target):
                best = m
    return best


def below(root: str | os.PathLike[str], *, include_root: bool = True) -> list[str]:
    """Mount points at or under ``root`` (symlinks in ``root`` resolved), deepest first: the order
    to unmount them in."""
    r = os.path.realpath(root)
    hits = {t for t in mount_points()
            if t.startswith(r + "/") or (include_root and t == r)}
    return sorted(hits, key=lambda t: (t.count("/"), len(t)), reverse=True)


def umount_below(root: str | os.PathLike[str], *, include_root: bool = True) -> list[str]:
    """Detach every mount at or under ``root``, deepest first; returns what was unmounted
    (best effort: a mount that cannot be detached is left for the caller's next step to report)."""
    from sandbox._sys import libc
    done = []
    for point in below(root, include_root=include_root):
        try:
            libc.umount(point, libc.MNT_DETACH)
            done.append(point)
        except OSError:
            pass
    return done
