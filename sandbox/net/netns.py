"""Named network namespaces, made the way the CNI slide does it (seed slide 48):

    touch myns; unshare -n mount --bind /proc/self/ns/net myns

A network namespace lives as long as a process is in it or a file is bind-mounted on its
``/proc/<pid>/ns/net``. :func:`create` starts a helper thread that calls ``unshare(CLONE_NEWNET)``
(namespaces belong to tasks, i.e. threads) and bind-mounts its own ``/proc/thread-self/ns/net``
onto an empty file, then ends: the mount keeps the namespace alive. The default directory is ``/run/netns`` so ``ip netns`` (iproute2) sees the
handles; like iproute2 we make that directory a *shared* mount so a handle made here also shows
up in mount namespaces cloned from this one (and unmounting it propagates too).

"Node" namespaces (:func:`node_create`) play the host: the bridge, ``ip_forward`` and NAT rules of
a CNI network live there, so tests and labs never change the real host's network.

Link, address and route work goes through pyroute2 (:func:`iproute`), never ``ip`` subprocesses.

man pages: unshare(2), setns(2), mount(2), namespaces(7), network_namespaces(7), ip-netns(8).
"""
from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import itertools
import os
import re
import threading
from pathlib import Path

from sandbox import config
from sandbox._sys import libc, mountinfo
from sandbox.errors import NotRootError, SandboxError
from sandbox.steps import Steps, record, snapshotting

TYPE_CHECKING = False   # typing is for annotations only: importing it costs ~2 ms per pod start
if TYPE_CHECKING:
    from typing import Any, Iterator, Sequence

DEFAULT_DIR = "/run/netns"
_NS_GET_NSTYPE = 0xB703  # ioctl_ns(2)
_MAX_STACKED = 16       # mounts stacked on one handle that delete() takes off
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class NetnsError(SandboxError):
    """A network namespace could not be created, found, entered or removed."""


# -- names and paths ------------------------------------------------------------------------

def path_of(name_or_path: str | os.PathLike[str], dir: str | os.PathLike[str] = DEFAULT_DIR) -> Path:
    """The handle file of a netns: ``name`` -> ``<dir>/name``; anything with a ``/`` is a path."""
    s = os.fspath(name_or_path)
    if "/" in s:
        return Path(s)
    if not _NAME_RE.match(s):
        raise NetnsError(f"'{s}' is not a valid network namespace name.",
                         hint="Use letters, digits, '.', '_' or '-', starting with a letter or digit (at most 64 characters).")
    return Path(dir) / s


def ns_inode(path: str | os.PathLike[str] = "/proc/self/ns/net") -> int:
    """The inode number that identifies a namespace (the number in ``net:[4026531840]``)."""
    try:
        return libc.ns_inode(os.fspath(path))
    except FileNotFoundError:
        raise NetnsError(f"There is no network namespace at {path}.",
                         hint="List them with 'sandbox netns list'.") from None


def current_inode() -> int:
    """Inode of the calling *thread's* network namespace (setns is per thread)."""
    return ns_inode(f"/proc/self/task/{threading.get_native_id()}/ns/net")


def is_netns(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a live netns handle (an nsfs bind mount), not just an empty file."""
    try:
        fd = libc.open_ns(path)         # never blocks (a FIFO), never opens a device
    except OSError:
        return False
    try:  # ioctl_ns(2): NS_GET_NSTYPE answers CLONE_NEWNET for a netns; an empty file fails
        return fcntl.ioctl(fd, _NS_GET_NSTYPE) == libc.CLONE_NEWNET
    except OSError:
        return False
    finally:
        os.close(fd)


def _open_handle(path: Path) -> int:
    """``libc.open_ns`` with the kit's errors: no handle at ``path``, or a file that is none."""
    try:
        return libc.open_ns(path)
    except FileNotFoundError as e:
        raise NetnsError(f"There is no network namespace at {path}.",
                         hint="List them with 'sandbox netns list'.") from e
    except OSError as e:
        raise NetnsError(f"Could not enter {path}: {e.strerror}.",
                         hint="Is it a netns handle (made by 'sandbox netns add')?") from e


# -- the directory, shared like iproute2's ---------------------------------------------------

_dir_lock = threading.RLock()  # also held across create, so a release never races a bind


def _made_by_kit(key: str) -> Path:
    """The marker saying the kit bound ``key`` onto itself. Whichever process of the kit
    deletes the last handle undoes that mount: the one that made it (often a pod's supervisor)
    has usually exited by then, and on a fresh machine (the VM) the mount was left behind."""
    return Path(key + f".{config.NAME_PREFIX}-shared")


@contextlib.contextmanager
def _dir_flock(d: Path) -> Iterator[None]:
    """A flock(2) shared by every process of the kit (parallel test sessions, a notebook and a
    pod's supervisor): deciding to bind ``d`` onto itself and making a handle in it never
    interleave, so no bind is ever laid over a handle made a moment before. It is taken on the
    *parent* directory (``/run`` for ``/run/netns``): a descriptor open on ``d`` itself would
    keep its mount busy, and the release's umount would fail."""
    with _dir_lock:
        fd = os.open(d.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _ensure_dir(d: Path, steps: Steps | None) -> None:
    """Create ``d`` and make it a shared mount point (ip-netns(8) does the same), so handles
    propagate to mount namespaces cloned from this one. Call with :func:`_dir_flock` held.

    Not when handles are already mounted below a ``d`` that is no mount point itself (made the
    slide's way, ``touch /run/netns/A; unshare -n mount --bind …``, before anything else): a
    bind of ``d`` onto itself would lay a new mount *over* them — their copies show through,
    but the originals stay mounted underneath where no umount reaches them, and their files
    can never be unlinked (EBUSY). ``d`` then stays a plain directory: handles work the same,
    only mount namespaces cloned earlier do not see later ones."""
    key = str(d.resolve())
    points = mountinfo.mount_points()
    if key in points:
        return
    if any(p.startswith(key + "/") for p in points):
        record(steps, "check", key, note="handles are mounted in this plain directory already: "
                                         "it is not bound onto itself (that would hide them)")
        return
    libc.mount(key, key, None, libc.MS_BIND | libc.MS_REC)
    libc.mount(None, key, None, libc.MS_SHARED | libc.MS_REC)
    _made_by_kit(key).touch()
    record(steps, "mount", key, how="bind onto itself, then make-shared (like ip netns)")


def _release_dir(d: Path, steps: Steps | None) -> None:
    """Undo :func:`_ensure_dir` once the directory holds no handle any more, if the kit made
    that mount (iproute2 leaves it; we leave the machine as we found it). A plain umount(2)
    fails with EBUSY while any handle is still mounted inside, whoever made it."""
    key = str(d.resolve())
    marker = _made_by_kit(key)
    with _dir_lock:
        if not marker.exists():
            return
        with _dir_flock(d):
            if any(p.startswith(key + "/") for p in mountinfo.mount_points()):
                return
            try:
                libc.umount(key)
            except OSError as e:
                if e.errno == errno.EINVAL:   # no mount point any more: the marker is stale
                    marker.unlink(missing_ok=True)
                return
            marker.unlink(missing_ok=True)
        record(steps, "umount", key, note="no handles left: the shared bind mount is undone")


# -- create / delete / list -------------------------------------------------------------------

def _helper_bind(target: str, steps: Steps | None = None) -> tuple[int, int]:
    """The slide's ``unshare -n mount --bind /proc/self/ns/net target``, done by a helper
    *thread*: network namespaces belong to tasks (threads), so the thread unshares a new one for
    itself, bind-mounts its own ``/proc/thread-self/ns/net`` onto ``target`` and ends; the mount
    keeps the namespace alive. (A forked helper process does the same, but forking a Python
    process makes every page of it copy-on-write for both sides: ~2 ms per pod start.)
    Returns (the helper thread's id, inode of the new netns). The steps are recorded by the
    helper itself, so a snapshot sees it at work."""
    def helper() -> tuple[int, int]:
        tid = threading.get_native_id()
        record(steps, "thread", f"helper thread {tid} starts", thread=tid,
               netns_inode=current_inode(), after=_tasks(steps, target))
        libc.unshare(libc.CLONE_NEWNET)
        ino = os.stat("/proc/thread-self/ns/net").st_ino
        record(steps, "unshare", "CLONE_NEWNET in a helper thread", thread=tid, netns_inode=ino,
               after=_tasks(steps, target))
        libc.mount("/proc/thread-self/ns/net", target, None, libc.MS_BIND)
        record(steps, "mount", target, source=f"/proc/{os.getpid()}/task/{tid}/ns/net",
               flags="MS_BIND", netns_inode=ino, after=_tasks(steps, target))
        return tid, ino
    return in_thread(helper)


def tasks_state(handles: Sequence[str | os.PathLike[str]] = ()) -> dict[str, Any]:
    """This process's threads with the netns each one is in, and what each handle file holds
    (a netns, or an empty file): the state a namespace picture is drawn from."""
    pid = os.getpid()
    threads = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        try:
            ino = os.stat(f"/proc/{pid}/task/{tid}/ns/net").st_ino
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        threads.append({"tid": int(tid), "netns": ino, "comm": comm})
    out = []
    for h in handles:
        try:
            st = os.stat(h)
        except FileNotFoundError:
            out.append({"path": os.fspath(h), "exists": False, "netns": None, "inode": None})
            continue
        live = is_netns(h)
        out.append({"path": os.fspath(h), "exists": True, "inode": st.st_ino,
                    "netns": st.st_ino if live else None})
    return {"kind": "netns", "pid": pid, "main": threading.main_thread().native_id,
            "caller": threading.get_native_id(), "threads": threads, "handles": out}


def _tasks(steps: Steps | None, *handles: str | os.PathLike[str]) -> dict[str, Any] | None:
    return tasks_state(handles) if snapshotting(steps) else None


def create(name: str, dir: str | os.PathLike[str] = DEFAULT_DIR, steps: Steps | None = None) -> Path:
    """Create a named netns the slide's way and return its handle path (``<dir>/<name>``).

    A name with a ``/`` is used as the handle path itself (like the slide's ``myns``)."""
    if os.geteuid() != 0:
        raise NotRootError("Creating a network namespace")
    path = path_of(name, dir)
    bare = "/" in os.fspath(name)   # a bare path, like the slide's myns: no shared dir needed
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    with _dir_flock(path.parent):
        if not bare:
            _ensure_dir(path.parent, steps)
        try:  # touch myns (O_EXCL: never reuse someone else's handle)
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        except FileExistsError:
            raise NetnsError(f"A network namespace named '{name}' already exists ({path}).",
                             hint="Pick another name or delete it with 'sandbox netns del'.") from None
        try:
            bind(path, steps=steps, _name=name)
        except NetnsError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
    return path


def bind(path: str | os.PathLike[str], steps: Steps | None = None, *, _name: str = "") -> int:
    """The slide's ``unshare -n mount --bind /proc/self/ns/net PATH`` on an existing (empty)
    file: a helper thread gets a new netns and bind-mounts it there. Returns its inode."""
    if os.geteuid() != 0:
        raise NotRootError("Creating a network namespace")
    p = Path(path)
    if not p.is_file():
        raise NetnsError(f"{p} must exist first (the slide's 'touch myns').")
    if is_netns(p):
        raise NetnsError(f"{p} already holds a network namespace.")
    record(steps, "write", str(p), note="empty file: the handle (touch myns)",
           after=_tasks(steps, p))
    try:
        tid, ino = _helper_bind(str(p), steps)
    except OSError as e:
        raise NetnsError(f"Could not create network namespace '{_name or p}': "
                         f"{e.strerror or e}.") from None
    if snapshotting(steps):  # join() returns before the kernel has reaped the task: wait for it
        _wait_gone(f"/proc/self/task/{tid}")
    record(steps, "exit", f"helper thread {tid} ends", thread=tid, netns_inode=ino,
           note="the bind mount keeps the namespace alive", after=_tasks(steps, p))
    return ino


def _wait_gone(path: str, budget: float = 1.0) -> None:
    import time
    end = time.monotonic() + budget
    while os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.001)


def delete(name: str, dir: str | os.PathLike[str] = DEFAULT_DIR, *, missing_ok: bool = False,
           steps: Steps | None = None) -> None:
    """Unmount and unlink a netns handle. The namespace dies once no process is left in it,
    and with it every link inside (veth peers in other namespaces go too)."""
    path = path_of(name, dir)
    if not path.exists():
        if missing_ok:
            return
        raise NetnsError(f"There is no network namespace named '{name}' ({path}).",
                         hint="List them with 'sandbox netns list'.")
    # Every mount stacked on the handle goes (bound twice, e.g. the slide's way over a kit
    # handle); EINVAL: no mount point (any more).
    for _ in range(_MAX_STACKED):
        try:
            libc.umount(str(path), libc.MNT_DETACH)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENOENT):
                break
            raise NetnsError(f"Could not unmount {path}: {e.strerror}.",
                             hint="Is it in use by another mount namespace? Try again as root.") from e
        record(steps, "umount", str(path), flags="MNT_DETACH")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise NetnsError(f"Could not remove the handle {path}: {e.strerror}.") from e
        # Still a mount point, but none this mount namespace can reach: the handle was mounted
        # before its directory was bound onto itself, and the bind hides it (see _ensure_dir).
        raise NetnsError(f"The handle {path} is still mounted underneath a later mount of "
                         f"{path.parent}, out of reach; run `umount {path.parent}` (its handles "
                         "show through again) and delete it once more.") from e
    record(steps, "unlink", str(path))
    _release_dir(path.parent, steps)


def list(dir: str | os.PathLike[str] = DEFAULT_DIR) -> builtins.list[str]:  # noqa: A001
    """Names of the live netns handles in ``dir`` (sorted), like ``ip netns list``."""
    d = Path(dir)
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if is_netns(p))


def exists(name: str, dir: str | os.PathLike[str] = DEFAULT_DIR) -> bool:
    return is_netns(path_of(name, dir))


# -- entering ---------------------------------------------------------------------------------

@contextlib.contextmanager
def enter(name_or_path: str | os.PathLike[str], dir: str | os.PathLike[str] = DEFAULT_DIR,
          steps: Steps | None = None) -> Iterator[Path]:
    """Run the ``with`` block inside a netns: setns(2) on the *calling thread*, restored on exit.

    Network namespaces belong to threads, not processes: other threads of this process stay
    where they are (threads started inside the block inherit the namespace), sockets opened before the block keep their old namespace, and sockets
    opened inside keep the new one after it. /proc/self/net and /sys/class/net are *not*
    switched (they follow the mount namespace); read state through netlink instead.
    """
    path = path_of(name_or_path, dir)
    tid = threading.get_native_id()
    old = os.open(f"/proc/self/task/{tid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        new = _open_handle(path)
        try:
            libc.setns(new, libc.CLONE_NEWNET)
        except OSError as e:
            raise NetnsError(f"Could not enter {path}: {e.strerror}.",
                             hint="Is it a netns handle (made by 'sandbox netns add')?") from None
        finally:
            os.close(new)
        record(steps, "setns", str(path), thread=tid, netns_inode=current_inode(),
               after=_tasks(steps, path))
        try:
            yield path
        finally:
            libc.setns(old, libc.CLONE_NEWNET)
            record(steps, "setns", "back", thread=tid, netns_inode=current_inode(),
                   after=_tasks(steps, path))
    finally:
        os.close(old)


def preexec_setns(name_or_path: str | os.PathLike[str] | None,
                  dir: str | os.PathLike[str] = DEFAULT_DIR) -> Any:
    """A ``preexec_fn`` for subprocess that moves the child into a netns before exec.

    The fd is opened here in the parent (errors are clear), inherited by the fork, and closed
    by exec (O_CLOEXEC). Returns None when ``name_or_path`` is None."""
    if name_or_path is None:
        return None
    path = path_of(name_or_path, dir)
    fd = _open_handle(path)

    def _enter() -> None:
        libc.setns(fd, libc.CLONE_NEWNET)

    _enter.fd = fd  # type: ignore[attr-defined]  # the caller closes it after the spawn
    return _enter


def run(name_or_path: str | os.PathLike[str], argv: Sequence[str], *,
        dir: str | os.PathLike[str] = DEFAULT_DIR, steps: Steps | None = None,
        **kwargs: Any) -> subprocess.CompletedProcess:
    """Run ``argv`` inside a netns (setns in the child, then exec) and wait for it.

    ``kwargs`` go to :func:`subprocess.run` (e.g. ``capture_output=True, text=True``)."""
    import subprocess
    pre = preexec_setns(name_or_path, dir)
    try:
        cp = subprocess.run(list_(argv), preexec_fn=pre, **kwargs)
    except FileNotFoundError:
        raise NetnsError(f"Command not found: {argv[0]}.") from None
    finally:
        os.close(pre.fd)
    record(steps, "exec", " ".join(argv), netns=str(path_of(name_or_path, dir)),
           exit_code=cp.returncode)
    return cp


def exec_(name_or_path: str | os.PathLike[str], argv: Sequence[str], *,
          dir: str | os.PathLike[str] = DEFAULT_DIR) -> None:
    """Replace this process by ``argv`` running inside the netns (``ip netns exec``).

    Meant for single-threaded callers like the CLI: setns here moves the only thread."""
    path = path_of(name_or_path, dir)
    fd = _open_handle(path)
    libc.setns(fd, libc.CLONE_NEWNET)
    os.close(fd)
    try:
        os.execvp(argv[0], list_(argv))
    except FileNotFoundError:
        raise NetnsError(f"Command not found: {argv[0]}.") from None


list_ = builtins.list  # the builtin, since this module defines its own `list`


# -- netlink (pyroute2) -----------------------------------------------------------------------

def iproute(name_or_path: str | os.PathLike[str] | None = None,
            dir: str | os.PathLike[str] = DEFAULT_DIR) -> Any:
    """A pyroute2 ``IPRoute`` bound to a netns (None = the caller's own).

    ``flags=0`` matters: pyroute2 0.9 defaults to O_CREAT and would silently create a new netns
    for a mistyped name. Use as ``with iproute("sbx-node") as ipr: ...``."""
    from pyroute2 import IPRoute  # imported lazily: ~0.4 s

    if name_or_path is None:
        return IPRoute()
    path = path_of(name_or_path, dir)
    if not path.exists():
        raise NetnsError(f"There is no network namespace at {path}.",
                         hint="List them with 'sandbox netns list'.")
    return IPRoute(netns=str(path), flags=0)


def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` in a fresh thread and return its result (or raise its exception).

    pyroute2's sync API refuses to run inside a running asyncio loop (a Jupyter cell is one),
    and setns moves only one thread: both are solved by doing the work in a short-lived thread."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # re-raised in the caller
            box["error"] = e

    t = threading.Thread(target=target, name="sandbox-netns")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _set_sysctl(key: str, value: str) -> None:
    # /proc/sys/net/* resolves against the netns of the thread that opens it
    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
        f.write(value)


def sysctl(name_or_path: str | os.PathLike[str], key: str, value: str | None = None,
           dir: str | os.PathLike[str] = DEFAULT_DIR) -> str:
    """Read (or set, then read) a per-netns sysctl such as ``net.ipv4.ip_forward`` inside a netns."""
    def work() -> str:
        with enter(name_or_path, dir):
            if value is not None:
                _set_sysctl(key, value)
            with open("/proc/sys/" + key.replace(".", "/")) as f:
                return f.read().strip()
    return in_thread(work)


def lo_up() -> None:
    """``ip link set lo up`` in the calling thread's netns: two ioctls (SIOCGIFFLAGS, then
    SIOCSIFFLAGS with IFF_UP) on a struct ifreq. One flag needs no netlink library, and a pod
    start should not import pyroute2 (~0.3 s)."""
    import socket
    import struct
    ifreq = "16sH22x"                                   # ifr_name, ifr_flags
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        got = fcntl.ioctl(s, libc.SIOCGIFFLAGS, struct.pack(ifreq, b"lo", 0))
        flags = struct.unpack(ifreq, got)[1]
        fcntl.ioctl(s, libc.SIOCSIFFLAGS, struct.pack(ifreq, b"lo", flags | libc.IFF_UP))


def _lo_up(path: Path) -> None:
    with enter(path):
        lo_up()


def node_create(name: str, dir: str | os.PathLike[str] = DEFAULT_DIR,
                steps: Steps | None = None) -> Path:
    """A netns that plays the host ("node"): ``lo`` up and ``net.ipv4.ip_forward=1``.

    Run CNI plugins inside it (the runtime's ``node=`` argument) so their bridge, forwarding
    and NAT rules land here; deleting the node resets everything."""
    path = create(name, dir, steps)
    try:
        in_thread(_lo_up, path)
        record(steps, "netlink", "lo", netns=str(path), state="up")
        sysctl(path, "net.ipv4.ip_forward", "1")
        record(steps, "write", "net.ipv4.ip_forward", netns=str(path), value=1)
    except BaseException:
        delete(name, dir, missing_ok=True)
        raise
    return path


def node_ensure(name: str, dir: str | os.PathLike[str] = DEFAULT_DIR,
                steps: Steps | None = None) -> Path:
    """The node netns ``name``, made when it is missing (:func:`node_create`) — by this process
    or by another one at the same moment. A handle with no namespace on it (its maker was killed
    between ``touch`` and the bind) is replaced: making a handle happens entirely under the
    directory's lock, so with the lock held an empty handle is nobody's work in progress."""
    path = path_of(name, dir)
    for _ in range(2):
        if is_netns(path):
            return path
        try:
            return node_create(name, dir, steps)
        except NetnsError:
            if is_netns(path):              # another process made it meanwhile
                return path
            with _dir_flock(path.parent):
                if path.exists() and not is_netns(path) \
                        and str(path) not in mountinfo.mount_points():
                    os.unlink(path)
                    record(steps, "unlink", str(path), note="a stale handle: no namespace on it")
    return node_create(name, dir, steps)


_counter = itertools.count(1)


def unique_name(prefix: str = "sbx") -> str:
    """A fresh name like ``sbx-4242-7`` (prefix, pid, counter), unique on this machine now."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}"


# -- reading state back (for pictures and checks) -----------------------------------------------

def _snapshot(path: Path) -> dict[str, Any]:
    with iproute(path) as ipr:
        return snapshot_from(ipr.get_links(), ipr.get_addr(), ipr.get_routes(table=254),
                             str(path), ns_inode(path))


def snapshot_from(links: Any, addrs: Any, routes: Any, path: str, inode: int) -> dict[str, Any]:
    """The snapshot dict (see :func:`snapshot`) from pyroute2 link, address and route messages:
    read from a dump here, or rebuilt change by change from the kernel's notifications
    (:mod:`sandbox.net.watch`)."""
    links = builtins.list(links)
    names: dict[int, str] = {l["index"]: l.get("ifname") for l in links}
    by_index: dict[int, builtins.list[str]] = {}
    for a in addrs:
        by_index.setdefault(a["index"], []).append(f"{a.get('address')}/{a['prefixlen']}")
    out_links = [{
        "index": l["index"], "name": l.get("ifname"),
        "kind": l.get(("linkinfo", "kind")) or ("loopback" if l.get("ifname") == "lo" else None),
        "up": bool(l["flags"] & 1), "operstate": l.get("operstate"),
        "mac": l.get("address"), "mtu": l.get("mtu"),
        "master": names.get(l.get("master")) if l.get("master") else None,
        "peer_index": l.get("link"),            # a veth's peer ifindex (maybe in another netns)
        "peer_netnsid": l.get("link_netnsid"),  # set when the peer is in another netns
        "addrs": by_index.get(l["index"], []),
    } for l in links]
    out_routes = []
    for r in routes:
        if r["family"] not in (2, 10):
            continue
        dst = r.get("dst")
        out_routes.append({"dst": f"{dst}/{r['dst_len']}" if dst else
                           ("0.0.0.0/0" if r["family"] == 2 else "::/0"),
                           "gateway": r.get("gateway"), "dev": names.get(r.get("oif")),
                           "family": 4 if r["family"] == 2 else 6})
    return {"path": path, "inode": inode, "links": out_links, "routes": out_routes}


def snapshot(name_or_path: str | os.PathLike[str],
             dir: str | os.PathLike[str] = DEFAULT_DIR) -> dict[str, Any]:
    """Links (kind, state, MAC, master, veth peer, addresses) and main-table routes of a netns,
    read with netlink (pyroute2). Safe to call from a notebook cell."""
    return in_thread(_snapshot, path_of(name_or_path, dir))


def nat_rules(name_or_path: str | os.PathLike[str],
              dir: str | os.PathLike[str] = DEFAULT_DIR) -> builtins.list[str]:
    """``iptables -t nat -S`` inside a netns (where ipMasq rules of a node live), minus policies."""
    cp = run(name_or_path, ["iptables", "-w", "-t", "nat", "-S"], dir=dir, capture_output=True,
             text=True)
    if cp.returncode != 0:
        raise NetnsError(f"iptables failed in {name_or_path}: {cp.stderr.strip()}")
    return [l for l in cp.stdout.splitlines() if not l.startswith("-P ")]


def ping(name_or_path: str | os.PathLike[str], address: str, count: int = 1,
         timeout: float = 2.0, dir: str | os.PathLike[str] = DEFAULT_DIR) -> subprocess.CompletedProcess:
    """``ping -c COUNT ADDRESS`` from inside a netns (busybox's if iputils is missing).

    Only ping addresses inside namespaces you made: this kit never sends traffic elsewhere."""
    import shutil
    base = ["ping"] if shutil.which("ping") else ["busybox", "ping"]
    return run(name_or_path, [*base, "-c", str(count), "-W", str(int(max(1, timeout))), address],
               dir=dir, capture_output=True, text=True)


class Session:
    """Namespaces and scratch directories made during one notebook or lab, all removed by
    :meth:`close` (idempotent; also run at interpreter exit, so a notebook that stops half-way
    still leaves nothing behind). Names are ``<prefix>-<pid>-<n>``.

        s = Session(); node = s.node(); c1 = s.create(); … ; s.close()

    With ``record=PATH`` the session also writes what it made (each handle with its namespace's
    inode, each scratch dir) to that JSON file as it goes, so a later process can remove exactly
    that — and nothing else — when this one died without closing (:meth:`recover`). Scratch
    directories go under ``scratch`` when given (else the system's temp dir).
    """

    def __init__(self, dir: str | os.PathLike[str] = DEFAULT_DIR, *, prefix: str = "sbx",
                 record: str | os.PathLike[str] | None = None,
                 scratch: str | os.PathLike[str] | None = None) -> None:
        import atexit
        self.dir = dir
        self.prefix = prefix
        self.record = Path(record) if record is not None else None
        self.scratch = Path(scratch) if scratch is not None else None
        self.paths: builtins.list[Path] = []
        self.tmpdirs: builtins.list[Path] = []
        self._inodes: dict[str, int] = {}
        atexit.register(self.close)

    def _remember(self, p: Path) -> Path:
        if p.exists() and is_netns(p):
            self._inodes[str(p)] = ns_inode(p)
        self._write_record()
        return p

    def _write_record(self) -> None:
        if self.record is None:
            return
        import json
        data = {"pid": os.getpid(),
                "netns": [{"path": str(p), "inode": self._inodes.get(str(p))} for p in self.paths],
                "tmpdirs": [str(d) for d in self.tmpdirs]}
        self.record.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.record.with_name(f".{self.record.name}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.record)

    def create(self, name: str | None = None, steps: Steps | None = None) -> Path:
        """A new netns (a name, or a path such as the slide's ``myns``)."""
        p = path_of(name or unique_name(self.prefix), self.dir)
        self.paths.append(p)
        self._write_record()   # before it exists: a crash mid-create still leaves a record
        made = create(os.fspath(p) if name and "/" in name else p.name, self.dir, steps)
        return self._remember(made)

    def node(self, name: str | None = None, steps: Steps | None = None) -> Path:
        """A new node netns (lo up, ip_forward=1)."""
        p = path_of(name or unique_name(self.prefix), self.dir)
        self.paths.append(p)
        self._write_record()
        return self._remember(node_create(p.name, self.dir, steps))

    def adopt(self, path: str | os.PathLike[str]) -> Path:
        """Also remove this netns handle at close."""
        p = Path(path)
        self.paths.append(p)
        return self._remember(p)

    def tmpdir(self, prefix: str = "sbx-", base: str | os.PathLike[str] | None = None) -> Path:
        """A scratch directory removed at close: under ``base`` if given, else under the
        session's ``scratch`` dir, else the system's temp dir."""
        import tempfile
        where = Path(base) if base is not None else self.scratch
        if where is not None:
            where.mkdir(parents=True, exist_ok=True)
        p = Path(tempfile.mkdtemp(prefix=prefix, dir=where))
        self.tmpdirs.append(p)
        self._write_record()
        return p

    def close(self) -> builtins.list[str]:
        """Remove everything; returns what was removed."""
        import shutil
        gone = []
        for p in reversed(self.paths):
            if p.exists():
                delete(os.fspath(p), self.dir, missing_ok=True)
                gone.append(str(p))
        self.paths.clear()
        self._inodes.clear()
        for d in self.tmpdirs:
            if d.exists():
                shutil.rmtree(d, ignore_errors=True)
                gone.append(str(d))
        self.tmpdirs.clear()
        if self.record is not None:
            self.record.unlink(missing_ok=True)
        return gone

    @staticmethod
    def recover(record: str | os.PathLike[str]) -> builtins.list[str]:
        """Remove what a session that died without closing wrote to its ``record``: each netns
        handle that still holds the *same* namespace (same inode; a handle made in its place by
        someone else is left alone), handles that never got a namespace, and its scratch dirs.
        Returns what was removed; the record goes too."""
        import json
        import shutil
        rec = Path(record)
        try:
            data = json.loads(rec.read_text())
        except (OSError, ValueError):
            rec.unlink(missing_ok=True)
            return []
        gone = []
        for entry in reversed(data.get("netns", [])):
            p = Path(entry.get("path", ""))
            if not p.is_absolute() or not p.exists():
                continue
            if is_netns(p):
                if entry.get("inode") is None or ns_inode(p) != entry["inode"]:
                    continue          # not (provably) the namespace that session made
                delete(os.fspath(p), p.parent, missing_ok=True)
            elif p.is_file() and p.stat().st_size == 0:
                p.unlink()            # a handle whose bind never happened
            else:
                continue
            gone.append(str(p))
        for d in data.get("tmpdirs", []):
            if Path(d).is_dir():
                shutil.rmtree(d, ignore_errors=True)
                gone.append(d)
        rec.unlink(missing_ok=True)
        return gone
