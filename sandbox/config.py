"""Where the kit keeps its state.

``$SANDBOX_DIR`` (default ``/var/lib/sandbox``; the CLI's global ``--dir`` sets it) holds the
image store, the tree store, trusted keys and pods. Everything the kit makes elsewhere on the
machine (netns handles under /run/netns, CNI results under /var/lib/cni) carries the prefix
:data:`NAME_PREFIX` so ``sandbox reset`` can find it.
"""
from __future__ import annotations

import os
from pathlib import Path

from sandbox.errors import SandboxError

DEFAULT_DIR = "/var/lib/sandbox"
NAME_PREFIX = "sbx"  # prefix of every netns, link, bridge and chain the kit names itself


def sandbox_dir() -> Path:
    """The state directory: ``$SANDBOX_DIR`` or /var/lib/sandbox."""
    return Path(os.environ.get("SANDBOX_DIR") or DEFAULT_DIR)


_checked: set[str] = set()


def _mkdir_private(d: Path) -> None:
    """``d`` made 0700 unless it exists."""
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        pass
    except PermissionError as e:
        raise SandboxError(f"cannot create {d}: permission denied.",
                           hint="Run as root or point --dir / $SANDBOX_DIR somewhere writable.") from e
    except OSError as e:    # ENOENT under /proc, ENOTDIR below a file, EROFS, ENOSPC …
        raise SandboxError(f"cannot create {d}: {e.strerror}.",
                           hint="Point --dir / $SANDBOX_DIR at a directory on a disk, e.g. "
                                "/tmp/sbx-state.") from e


# kernel filesystems that show the kernel's objects as files: no place for images and pods
PSEUDO_FILESYSTEMS = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "debugfs", "tracefs", "securityfs", "bpf",
    "configfs", "pstore", "mqueue", "fusectl", "binfmt_misc", "nsfs", "efivarfs", "autofs",
    "hugetlbfs", "devtmpfs"})


def check_state_dir() -> Path:
    """The state directory, made (0700) when missing, and checked once per process: a directory
    (not a file, not on a kernel pseudo filesystem such as /proc), writable, the current user's
    and writable by nobody else — a directory another local user can write to
    (SANDBOX_DIR=/tmp, mode 0777) lets them swap the trees and pods the kit runs as root."""
    import stat as _stat
    d = sandbox_dir()
    key = str(d)
    if key in _checked:
        return d
    try:
        d.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass                # reported by the mkdir below, naming the state directory
    _mkdir_private(d)
    st = os.stat(d)
    if not _stat.S_ISDIR(st.st_mode):
        raise SandboxError(f"the state directory {d} is not a directory.",
                           hint="Point --dir / $SANDBOX_DIR at a directory (it is made if missing).")
    from sandbox._sys import mountinfo
    m = mountinfo.containing(d)
    if m is not None and m.fstype in PSEUDO_FILESYSTEMS:
        raise SandboxError(f"the state directory {d} is on the kernel's {m.fstype} filesystem, "
                           "which cannot hold images and pods.",
                           hint="Point --dir / $SANDBOX_DIR at a directory on a disk, e.g. "
                                "/tmp/sbx-state.")
    if not os.access(d, os.W_OK | os.X_OK):
        raise SandboxError(f"the state directory {d} is not writable (a read-only filesystem, "
                           "or not yours).", hint="Pick another --dir / $SANDBOX_DIR.")
    if st.st_uid != os.geteuid():
        raise SandboxError(f"the state directory {d} belongs to user {st.st_uid}, not to you "
                           f"({os.geteuid()}); the kit keeps image trees there and will not share "
                           "them.", hint="Pick another --dir / $SANDBOX_DIR.")
    if st.st_mode & 0o022:
        raise SandboxError(f"the state directory {d} is writable by other users (mode "
                           f"{st.st_mode & 0o7777:04o}); they could swap the image trees and pods "
                           "the kit runs as root.", hint=f"Run `chmod go-w {d}` or pick another "
                           "--dir / $SANDBOX_DIR.")
    _checked.add(key)
    return d


def private_dir(name: str) -> Path:
    """``$SANDBOX_DIR/<name>`` as a directory only its owner can enter (0700), after
    :func:`check_state_dir`. Image trees, clean copies and pods (overlay upper dirs,
    ``--no-overlay`` copies) live in these: they keep the image's setuid files and owners, which
    no other local user may reach."""
    d = check_state_dir() / name
    _mkdir_private(d)
    st = os.lstat(d)
    if not os.path.isdir(d) or os.path.islink(d) or st.st_uid != os.geteuid():
        raise SandboxError(f"{d} is not a directory of yours (a link, a file or another user's); "
                           "the kit keeps image trees there.", hint=f"Remove {d} and try again.")
    if st.st_mode & 0o077:
        os.chmod(d, 0o700)   # made by an older kit with 0755: setuid files were reachable
    return d


def project_root() -> Path:
    """The repository checkout this package lives in (for notebooks, labs, tools)."""
    return Path(__file__).resolve().parent.parent


def tool_path(name: str) -> Path | None:
    """A reference tool built by provision/build-tools.sh (e.g. ``actool``), if present."""
    p = project_root() / ".tools" / "bin" / name
    return p if p.exists() else None
