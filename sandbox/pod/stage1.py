"""stage1: the pod's init (rkt's stage1, ace.md §Execution Environment, pods.md).

stage0 (:mod:`sandbox.pod.stage0`) decides everything and writes ``stage1.json`` in the pod directory;
this module only carries it out, so the mechanism can be read top to bottom:

* stage0 forks the pod's **PID 1** straight into a new PID namespace (:func:`pid1`, after it
  joined the pod's netns and unshared IPC, UTS and mount namespaces). Where stage0 cannot fork,
  it execs ``python -m sandbox.pod.stage1 run POD_DIR`` after ``unshare(NEWPID|NEWIPC|NEWUTS|NEWNS)``;
  a new PID namespace applies to children only, so that process forks once: the child is PID 1
  (:func:`init`), the parent relays signals and the exit status.
* PID 1 sets the pod's hostname, mounts each app's clean rootfs (an overlay over the tree store,
  inside the pod's own mount namespace, so it vanishes with the pod), starts one *app runner*
  per app, forwards SIGTERM/SIGINT to them and reaps every child (it is the pod's init).
* an app runner enters its own mount namespace (private propagation), joins its cgroups,
  bind-mounts its volumes, mounts /proc, /sys (read-only) and /dev, writes /etc/hosts if the
  image has none, ``pivot_root``s into the rootfs, drops capabilities, becomes the app's
  user/group, runs ``pre-start``, then the app, then ``post-stop``, and records the exit status.
  With no ``post-stop`` handler it *becomes* the app (execve in place) and PID 1 records the
  exit status when it reaps it.

``python -m sandbox.pod.stage1 enter POD_DIR APP -- CMD`` joins a running app's namespaces.
Everything is imported before ``pivot_root``: after it, the host's Python library is gone.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import sys
import time
from pathlib import Path

from sandbox._sys import cgroupfs, inroot, libc
from sandbox.pod import journal
from sandbox.pod.ace import CAPS, DEV_NODES, MASKED_PATHS, READONLY_PATHS

TYPE_CHECKING = False   # typing is for annotations only: importing it costs ~2 ms per pod start
if TYPE_CHECKING:
    from typing import Any

def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except OSError:
        return max(CAPS.values())


def drop_capabilities(keep: list[str], last_cap: int) -> None:
    """Bounding set first (prctl PR_CAPBSET_DROP), then effective/permitted/inheritable (capset)."""
    keep_nums = {CAPS[c] for c in keep}
    for cap in range(last_cap + 1):
        if cap not in keep_nums:
            libc.drop_bounding_cap(cap)
    libc.capset(keep_nums)


# ------------------------------------------------------------------------------ the app runner


def _write_json(dir_fd: int, name: str, obj: Any) -> None:
    tmp = f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=dir_fd)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


# Before pivot_root every path into the app's rootfs is the image's to shape (its /etc may be a
# link to the host's /etc, a mountPoint may climb with ".."): each one is resolved inside the
# rootfs (sandbox._sys.inroot) as the app will see it, and mounts are made on the descriptor
# the lookup returned (/proc/self/fd/N), never on a path a link could redirect afterwards.


def _pseudo_fs(root: inroot.Root, name: str, fstype: str, flags: int, data: str | None) -> None:
    """Mount ``fstype`` on the image's /``name`` (proc, sys, dev): a real directory or none —
    a link there is refused, as runc refuses one for /proc."""
    try:
        fd = root.mkdirs(name, follow=False)
    except OSError as e:
        what = "a symbolic link" if e.errno == errno.ELOOP else "not a directory"
        raise RuntimeError(f"the image's /{name} is {what}; the runtime mounts {fstype} there "
                           "and follows no link") from e
    try:
        libc.mount(fstype, inroot.proc_path(fd), fstype, flags, data)
    finally:
        os.close(fd)


def _setup_dev(root: inroot.Root) -> None:
    """/dev as ace.md lists it: a tmpfs with null, zero, full, random, urandom, tty, a console,
    a private devpts with ptmx, and a tmpfs /dev/shm. Nodes and links are made relative to the
    new tmpfs's descriptor (nothing of the image is below it).

    The app is root with CAP_MKNOD (ace.md's default set) and no device cgroup limits it, so
    any node it makes — the host's disk is 8:0 or 254:0 like any other number — must be
    useless: every mount it can write to is ``nodev``. Here that is the tmpfs itself, made
    nodev once its nodes are each bind-mounted onto themselves (a bind mount keeps the
    flags it was made with: these nodes open, a node made beside them does not)."""
    _pseudo_fs(root, "dev", "tmpfs", libc.MS_NOSUID, "mode=755,size=65536k")
    dev = root.open("dev", os.O_PATH | os.O_DIRECTORY, follow=False)   # the tmpfs now
    try:
        for name, (major, minor) in DEV_NODES.items():
            os.mknod(name, 0o666 | stat.S_IFCHR, os.makedev(major, minor), dir_fd=dev)
            os.chmod(name, 0o666, dir_fd=dev)   # the umask took bits off at mknod
        for sub, fstype, flags, data in (
                ("pts", "devpts", libc.MS_NOSUID | libc.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"),
                ("shm", "tmpfs", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC, "mode=1777,size=65536k")):
            os.mkdir(sub, 0o755, dir_fd=dev)
            fd = os.open(sub, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dev)
            try:
                libc.mount("shm" if sub == "shm" else fstype, inroot.proc_path(fd), fstype, flags, data)
            finally:
                os.close(fd)
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev)
        # /dev/console: the pod has no terminal; it is the null device (writes are discarded).
        os.mknod("console", 0o620 | stat.S_IFCHR, os.makedev(1, 3), dir_fd=dev)
        for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(target, link, dir_fd=dev)
        for name in (*DEV_NODES, "console"):
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dev)
            try:
                libc.mount(inroot.proc_path(fd), inroot.proc_path(fd), None, libc.MS_BIND)
            finally:
                os.close(fd)
        libc.restrict_mount(dev, libc.MOUNT_ATTR_NODEV, recursive=False)
    finally:
        os.close(dev)


def _mask(root: inroot.Root) -> None:
    """/proc and /sys as runc leaves them (ace.READONLY_PATHS, MASKED_PATHS): read-only bind
    mounts over the kernel's settings, the pod's /dev/null over files and an empty read-only
    tmpfs over directories that show the host's secrets. Paths this kernel lacks are skipped."""
    for path in READONLY_PATHS + MASKED_PATHS:
        try:
            fd = root.open(path, os.O_PATH, follow=False)
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
            if path in READONLY_PATHS:
                libc.mount(inroot.proc_path(fd), inroot.proc_path(fd), None, libc.MS_BIND | libc.MS_REC)
            elif is_dir:
                libc.mount("tmpfs", inroot.proc_path(fd), "tmpfs", libc.MS_RDONLY | libc.MS_NOSUID
                           | libc.MS_NODEV | libc.MS_NOEXEC, None)
                continue
            else:   # reads as empty, writes vanish (runc does the same)
                null = root.open("/dev/null", os.O_PATH, follow=False)
                try:
                    libc.mount(inroot.proc_path(null), inroot.proc_path(fd), None, libc.MS_BIND)
                finally:
                    os.close(null)
                continue
        finally:
            os.close(fd)
        fd = root.open(path, os.O_PATH, follow=False)      # the new mount on top now
        try:
            libc.restrict_mount(fd, libc.MOUNT_ATTR_RDONLY | libc.MOUNT_ATTR_NOSUID
                                | libc.MOUNT_ATTR_NODEV | libc.MOUNT_ATTR_NOEXEC, recursive=True)
        finally:
            os.close(fd)


def _bind(root: inroot.Root, source: str, target: str, read_only: bool,
          recursive: bool = True) -> None:
    """Bind-mount the host path ``source`` on ``target`` inside the app's root (made there, as
    a directory or an empty file like the source, when missing)."""
    try:
        if os.path.isdir(source):
            fd = root.mkdirs(target)
        else:
            try:
                fd = root.open(target)
            except FileNotFoundError:
                w = root.create(target, 0o644)
                if w is None:
                    raise FileExistsError(errno.EEXIST, "a dangling link is in the way", target) from None
                os.close(w)
                fd = root.open(target)
    except OSError as e:
        raise RuntimeError(f"the mount target {target} cannot be made in the app's rootfs "
                           f"({e.strerror})") from e
    flags = libc.MS_BIND | (libc.MS_REC if recursive else 0)
    try:
        libc.mount(source, inroot.proc_path(fd), None, flags)
    finally:
        os.close(fd)
    # nodev (see _setup_dev), read-only when asked — on every mount the bind brought along (a
    # remount of the top alone leaves a host volume's submounts writable). The new mount is
    # on top now: look the target up again.
    fd = root.open(target)
    try:
        libc.restrict_mount(fd, libc.MOUNT_ATTR_NODEV | (libc.MOUNT_ATTR_RDONLY if read_only else 0),
                            recursive=True)
    finally:
        os.close(fd)


def _prepare_root(app: dict[str, Any], pod_dir: Path, rootfs: Path) -> None:
    """Everything the runner does in the app's rootfs before pivot_root: its volumes, /etc/hosts
    (when neither the image nor a volume has one, ace.md), /proc, /sys and /dev."""
    with inroot.Root(rootfs) as root:
        for m in app.get("mounts", []):
            source = m["source"] if m["source"].startswith("/") else str(pod_dir / m["source"])
            _bind(root, source, m["target"], m["readOnly"], m.get("recursive", True))
        if app.get("hosts"):
            try:
                fd = root.create("/etc/hosts", 0o644)
            except OSError as e:
                raise RuntimeError(f"/etc/hosts cannot be written in the app's rootfs ({e.strerror})") from e
            if fd is not None:
                with os.fdopen(fd, "w") as f:
                    f.write(app["hosts"])
        _pseudo_fs(root, "proc", "proc", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC, None)
        _pseudo_fs(root, "sys", "sysfs", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC | libc.MS_RDONLY, None)
        _setup_dev(root)
        _mask(root)


def _resolve_exec(argv0: str, env: dict[str, str]) -> str:
    if "/" in argv0:
        return argv0
    for d in env.get("PATH", "").split(":"):
        cand = os.path.join(d or ".", argv0)
        if os.access(cand, os.X_OK):
            return cand
    return argv0


def become_app(app: dict[str, Any], last_cap: int) -> None:
    """In the child that will exec: no-new-privileges, capabilities, groups, user, cwd."""
    # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across execve:
    # the app gets the default actions back (as a shell or runc would give it).
    for s in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(s, signal.SIG_DFL)
    if app.get("noNewPrivileges"):
        libc.no_new_privs()
    drop_capabilities(app["capabilities"], last_cap)
    os.setgroups(app.get("supplementaryGIDs", []))
    os.setgid(app["gid"])
    os.setuid(app["uid"])
    cwd = app.get("workingDirectory") or "/"
    try:
        os.chdir(cwd)
    except OSError:
        raise RuntimeError(f"the working directory {cwd} does not exist in the app's rootfs "
                           "(ace.md: the ACE fails the app)") from None


_stop_signal: int | None = None   # a stop that arrived while the runner was setting up


def _remember_stop(sig: int, _frame: Any) -> None:
    global _stop_signal
    _stop_signal = sig


def _exec_app(argv: list[str], app: dict[str, Any], last_cap: int) -> None:
    """Become the app's user and execve ``argv``; never returns (127 when it cannot run)."""
    env = app["env"]
    # A stop from here on kills the process (default action); one caught before is obeyed.
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)
    if _stop_signal is not None:
        os._exit(128 + _stop_signal)
    try:
        become_app(app, last_cap)
        os.execve(_resolve_exec(argv[0], env), argv, env)
    except Exception as e:  # noqa: BLE001
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        os.write(2, f"stage1: cannot execute {argv[0]}: {msg}\n".encode())
    os._exit(127)


def _run_and_wait(argv: list[str], app: dict[str, Any], last_cap: int) -> int:
    """fork, become the app's user, execve, wait (forwarding SIGTERM/SIGINT/SIGHUP to the
    child); returns a shell-style code (128+N for death by signal N)."""
    pid = os.fork()
    if pid == 0:
        _exec_app(argv, app, last_cap)
    forward = lambda sig, _f: _kill(pid, sig)  # noqa: E731
    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    if _stop_signal is not None:
        _kill(pid, _stop_signal)
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def run_app(app: dict[str, Any], pod_dir: Path, last_cap: int) -> int:
    """The app runner (a child of the pod's PID 1). Returns the app's exit code."""
    app_dir = pod_dir / "apps" / app["name"]
    dir_fd = os.open(app_dir, os.O_RDONLY | os.O_DIRECTORY)
    status: dict[str, Any] = {"app": app["name"], "started": time.time()}
    # The host PID (for `sandbox enter`): /proc is still the host's procfs here.
    # becomesApp: with no post-stop handler the runner execs the app itself (same PIDs)
    _write_json(dir_fd, "pid.json", {"host_pid": int(os.readlink("/proc/self")),
                                     "pod_pid": os.getpid(),
                                     "becomesApp": not app.get("postStop")})
    who = f"app {app['name']}"
    try:
        libc.unshare(libc.CLONE_NEWNS)
        libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
        journal.note(who, "unshare", "CLONE_NEWNS: a mount namespace of its own",
                     note="private propagation: its mounts stay its own")
        _join_cgroups(app.get("cgroups", []))
        rootfs = app_dir / "rootfs"
        _prepare_root(app, pod_dir, rootfs)
        if app.get("readOnlyRootFS"):   # the root only: its volumes keep their own setting
            fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                libc.restrict_mount(fd, libc.MOUNT_ATTR_RDONLY, recursive=False)
            finally:
                os.close(fd)
        journal.note(who, "mount", str(rootfs), note="volumes, /proc, /sys (read-only), /dev "
                     "mounted in the app's rootfs", cgroups=app.get("cgroups", []))
        os.chdir(rootfs)
        libc.pivot_root(".", ".")                       # the old root is stacked on "."
        libc.umount(".", libc.MNT_DETACH)              # … and detached
        os.chdir("/")
        journal.note(who, "pivot_root", str(rootfs), note="the app's rootfs is / now; the host's "
                     "root, stacked under it, is detached")
        # The runner stays root while it has a status to write; what it runs becomes the
        # app's user (a child for the handlers, the runner itself for the app when no
        # post-stop handler follows it).
        code = 0
        if app.get("preStart"):
            code = _run_and_wait(app["preStart"], app, last_cap)
            status["preStart"] = code
        if _stop_signal is not None:
            code = 128 + _stop_signal
            status["error"] = "stopped before the app started"
            status["exitCode"] = code
        elif code == 0 and not app.get("postStop"):
            # Nothing left to run after the app: the runner becomes it (one process less
            # per app); PID 1 records the exit status when it reaps it.
            status["mainStarted"] = time.time()
            _write_json(dir_fd, "status.json", status)
            journal.note(who, "exec", " ".join(app["exec"]), user=app.get("user"),
                         group=app.get("group"), note="the runner becomes the app (execve)")
            _exec_app(app["exec"], app, last_cap)
        elif code == 0:
            status["mainStarted"] = time.time()
            journal.note(who, "exec", " ".join(app["exec"]), user=app.get("user"),
                         group=app.get("group"), note="a child runs the app; post-stop follows")
            code = _run_and_wait(app["exec"], app, last_cap)
            status["exitCode"] = code
            status["postStop"] = _run_and_wait(app["postStop"], app, last_cap)
        else:
            status["exitCode"] = code
            status["error"] = f"pre-start handler exited with {code}; the app was not started"
            # said where the app's output goes too: a foreground run showed no word of it
            os.write(2, f"stage1: app {app['name']}: {status['error']}\n".encode())
    except Exception as e:  # noqa: BLE001 - recorded for `sandbox status`, then the app fails
        status["exitCode"] = 126
        status["error"] = str(e)
        os.write(2, f"stage1: app {app['name']}: {e}\n".encode())
    status["finished"] = time.time()
    _write_json(dir_fd, "status.json", status)
    return int(status["exitCode"])


# ------------------------------------------------------------------------------ PID 1


def _record_exit(app_dir: Path, code: int) -> None:
    """The exit status of a runner that became its app (its status.json has no exitCode)."""
    try:
        status = json.loads((app_dir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        status = {"app": app_dir.name, "error": "the app runner ended before it started the app"}
    if "exitCode" not in status:
        status.update(exitCode=code, finished=time.time())
        fd = os.open(app_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _write_json(fd, "status.json", status)
        finally:
            os.close(fd)


FAILURE_FILE = "stage1.error"      # why PID 1 failed, for the supervisor's run.json


def failure(pod_dir: Path) -> str | None:
    """Why the pod's PID 1 failed (what :func:`init` raised), or None."""
    try:
        with open(pod_dir / FAILURE_FILE, "rb") as f:
            text = f.read(4096).decode("utf-8", "replace").strip()
    except OSError:
        return None
    return text or None


def init(plan: dict[str, Any], pod_dir: Path) -> int:
    """The pod's PID 1: mounts, app runners, signal forwarding, reaping. What makes it fail is
    written to FAILURE_FILE: the supervisor makes it the pod's error (`status`, a foreground
    `run`), which it was not (only stage1.log said it, e.g. sethostname's EINVAL)."""
    try:
        return _init(plan, pod_dir)
    except Exception as e:
        import contextlib
        with contextlib.suppress(OSError):
            (pod_dir / FAILURE_FILE).write_text(f"{e}\n")
        raise


def _init(plan: dict[str, Any], pod_dir: Path) -> int:
    if plan.get("journal"):
        journal.open_for(pod_dir)
    try:
        socket.sethostname(plan["hostname"])
    except (OSError, ValueError) as e:
        raise RuntimeError(f"the pod's PID 1 cannot set the hostname {plan['hostname'][:70]!r} "
                           f"({getattr(e, 'strerror', None) or e})") from e
    libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
    journal.note("pid1", "start", "PID 1 of the pod", hostname=plan["hostname"],
                 note="new PID, IPC, UTS and mount namespaces; the pod's netns")
    for app in plan["apps"]:
        app_dir = pod_dir / "apps" / app["name"]
        rootfs = app_dir / "rootfs"
        # nodev: a device node the app makes in its root opens nothing (see stage1._setup_dev)
        if app["overlay"]:
            libc.mount("overlay", str(rootfs), "overlay", libc.MS_NODEV,
                         f"lowerdir={app['tree']},upperdir={app_dir / 'upper'},"
                         f"workdir={app_dir / 'work'}")
        else:   # a plain copy made by stage0; a bind mount makes it a mount point for pivot_root
            libc.mount(str(rootfs), str(rootfs), None, libc.MS_BIND | libc.MS_REC)
            fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                libc.restrict_mount(fd, libc.MOUNT_ATTR_NODEV, recursive=True)
            finally:
                os.close(fd)
        journal.note("pid1", "mount", str(rootfs), app=app["name"],
                     fstype="overlay" if app["overlay"] else "bind",
                     lowerdir=app.get("tree", ""), note="the app's clean copy of its tree")
    last_cap = _last_cap()
    runners: dict[int, str] = {}
    stopping = False

    def forward(sig: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(runners):
            _kill(pid, signal.SIGTERM if sig != signal.SIGKILL else sig)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    for app in plan["apps"]:
        app_dir = pod_dir / "apps" / app["name"]
        out = os.open(app_dir / "stdout", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        err = os.open(app_dir / "stderr", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        pid = os.fork()
        if pid == 0:
            code = 126
            try:
                for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(s, _remember_stop)
                null = os.open("/dev/null", os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(out, 1)
                os.dup2(err, 2)
                code = run_app(app, pod_dir, last_cap)
            finally:
                os._exit(code)
        os.close(out)
        os.close(err)
        runners[pid] = app["name"]
        journal.note("pid1", "fork", f"the runner of {app['name']} (pid {pid} in the pod)",
                     app=app["name"], child=pid)
    codes: dict[str, int] = {}
    while runners:
        try:
            pid, st = os.waitpid(-1, 0)     # PID 1 reaps every orphan of the pod, too
        except ChildProcessError:
            break
        name = runners.pop(pid, None)
        if name is not None:
            codes[name] = os.waitstatus_to_exitcode(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)
            _record_exit(pod_dir / "apps" / name, codes[name])
    return next((c for c in codes.values() if c != 0), 0)


def _relay(child: int) -> int:
    """The process stage0 started: forward signals to PID 1 of the pod and wait for it."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda sig, _f: _kill(child, signal.SIGTERM))
    while True:
        try:
            _, st = os.waitpid(child, 0)
            break
        except ChildProcessError:
            return 1
    return os.waitstatus_to_exitcode(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)


def _join_cgroups(dirs: list[str]) -> None:
    """Be in each of these cgroups: the pod's (stage1's own group, or an app's). PID 1 and an app
    without limits were born in stage1's group: no move (a move costs a grace period)."""
    cgroupfs.enter(dirs)


def pid1(pod_dir: Path) -> int:
    """The pod's PID 1 when stage0 forked it straight into the new PID namespace."""
    # forked from the supervisor: its signal wake-up descriptor is not ours (and closed here)
    signal.set_wakeup_fd(-1)
    plan = json.loads((pod_dir / "stage1.json").read_text())
    _join_cgroups(plan.get("stage1Cgroups", []))   # first: whatever it starts is the pod's
    # /proc is still the host's here: /proc/self names this process by its host PID
    (pod_dir / "stage1.pid").write_text(f"{int(os.readlink('/proc/self'))}\n")
    return init(plan, pod_dir)


def run(pod_dir: Path) -> int:
    """``python -m sandbox.pod.stage1 run``: started after unshare(NEWPID), fork PID 1 and relay."""
    plan = json.loads((pod_dir / "stage1.json").read_text())
    _join_cgroups(plan.get("stage1Cgroups", []))   # first: whatever it starts is the pod's
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = init(plan, pod_dir)
        except Exception as e:  # noqa: BLE001
            os.write(2, f"stage1: {e}\n".encode())
        finally:
            os._exit(code)
    (pod_dir / "stage1.pid").write_text(f"{os.getpid()} {pid}\n")
    return _relay(pid)


# ------------------------------------------------------------------------------ enter


def enter(pod_dir: Path, app_name: str, argv: list[str]) -> int:
    """Run ``argv`` inside a running app: its pod's IPC, UTS, net and PID namespaces and the app's
    own mount namespace (whose root is the app's rootfs), as the app's user, in its cwd."""
    plan = json.loads((pod_dir / "stage1.json").read_text())
    app = next((a for a in plan["apps"] if a["name"] == app_name), None)
    if app is None:
        names = ", ".join(a["name"] for a in plan["apps"])
        print(f"sandbox: the pod has no app '{app_name}'; give --app one of: {names}.",
              file=sys.stderr)
        return 2
    gone = (f"sandbox: the app '{app_name}' is not running; `sandbox logs {pod_dir.name} --app "
            f"{app_name}` shows what it printed.")
    try:
        host_pid = json.loads((pod_dir / "apps" / app_name / "pid.json").read_text())["host_pid"]
    except (FileNotFoundError, ValueError, KeyError):
        print(gone, file=sys.stderr)
        return 1
    try:    # a process entered into an app is the app's: limited and stopped with it
        _join_cgroups(app.get("cgroups", []))
    except FileNotFoundError:
        print(gone, file=sys.stderr)
        return 1
    fds = {}
    try:
        for t in ("ipc", "uts", "net", "pid", "mnt"):
            fds[t] = os.open(f"/proc/{host_pid}/ns/{t}", os.O_RDONLY)
    except FileNotFoundError:
        print(gone, file=sys.stderr)
        return 1
    for t in ("ipc", "uts", "net", "pid", "mnt"):   # mnt last: it changes our root
        libc.setns(fds[t], 0)
        os.close(fds[t])
    pid = os.fork()     # the new PID namespace applies to children
    if pid == 0:
        try:
            become_app(app, _last_cap())
            os.execve(_resolve_exec(argv[0], app["env"]), argv, app["env"])
        except Exception as e:  # noqa: BLE001
            msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            os.write(2, f"sandbox: cannot run {argv[0]} in {app_name}: {msg}\n".encode())
            os._exit(127)
    return _relay(pid)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "run":
        return run(Path(argv[1]))
    if len(argv) >= 4 and argv[0] == "enter" and argv[3] == "--":
        return enter(Path(argv[1]), argv[2], argv[4:])
    print("usage: python -m sandbox.pod.stage1 run POD_DIR | enter POD_DIR APP -- CMD...",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
