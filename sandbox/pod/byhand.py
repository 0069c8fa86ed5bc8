"""A container by hand (lab 11): the primitives stage1 uses, one call at a time, in a process of
its own — containers-from-scratch, with ace.md's app perspective as the goal.

:func:`start` renders an image into the tree store and starts a *helper*: a fresh interpreter
(``python -m sandbox.pod.byhand serve``) that reads one request per line on stdin, carries it out
on itself and answers on stdout. Each method of :class:`ByHand` is one system call (or a few)
that stage1 makes for every app — in the order *you* call them:

* :meth:`ByHand.unshare` — new namespaces for the helper (``mnt``, ``uts``, ``ipc``, ``net``,
  ``pid``; unshare(2)). A new PID namespace applies to the children only, so …
* :meth:`ByHand.fork` — … the helper forks; the child is PID 1 of the new namespace and serves
  from then on (the parent waits for it, like stage1's relay);
* :meth:`ByHand.make_private` — ``mount --make-rprivate /`` in its mount namespace, so nothing
  it mounts propagates to the host (mount_namespaces(7));
* :meth:`ByHand.mount_overlay` — the image's rendered tree as the lower layer of an overlay,
  a writable upper layer of its own (the clean copy of ace.md);
* :meth:`ByHand.pivot_root` — the overlay becomes ``/`` and the old root is detached;
* :meth:`ByHand.mount_proc` — a procfs for its PID namespace;
* :meth:`ByHand.sethostname` — in its UTS namespace;
* :meth:`ByHand.join_cgroup` — a cgroup of its own, with a memory limit;
* :meth:`ByHand.drop_capabilities` — the bounding, effective and permitted sets cut down to
  what ``sandbox run`` leaves an app (:data:`sandbox.pod.ace.DEFAULT_CAPS`);
* :meth:`ByHand.exec` — become the app.

The helper refuses the two calls that would change the *machine* when made outside a new
namespace (``make_private`` and ``pivot_root`` in the host's mount namespace, ``sethostname`` in
the host's UTS namespace); every other mistake is allowed and shows — the lab's check says how.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sandbox.errors import SandboxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NS_FLAGS = {"mnt": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "net": 0x40000000,
            "pid": 0x20000000}
MEMORY_LIMIT = 256 << 20


class ByHandError(SandboxError):
    """A primitive failed; the message says what it needs."""


class ByHand:
    """The learner's side: one method per primitive (see the module docstring)."""

    def __init__(self, proc: subprocess.Popen, workdir: Path, tree: Path) -> None:
        self._p = proc
        self.workdir = workdir
        self.tree = tree
        self.helper_pid = proc.pid
        self.pid = proc.pid            # the process the primitives act on (the child after fork)
        self.log: list[str] = []
        self._save()

    def _save(self) -> None:
        (self.workdir / "byhand.json").write_text(json.dumps(
            {"helper": self.helper_pid, "helper_start": _start_time(self.helper_pid),
             "pid": self.pid, "pid_start": _start_time(self.pid), "tree": str(self.tree),
             "log": self.log}))

    def _call(self, op: str, **args: Any) -> Any:
        if self._p.poll() is not None:
            raise ByHandError(f"the helper process is gone (exit {self._p.returncode}); start again "
                              "with byhand.start(...) after `sandbox lab reset 11`.")
        assert self._p.stdin is not None and self._p.stdout is not None
        self._p.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self._p.stdin.flush()
        line = self._p.stdout.readline()
        if not line:
            raise ByHandError(f"the helper ended during {op} (exit {self._p.wait(5)}).")
        reply = json.loads(line)
        self.log.append(op + ("" if reply.get("ok") else " (failed)"))
        if reply.get("pid"):
            self.pid = int(reply["pid"])
        self._save()
        if not reply.get("ok"):
            raise ByHandError(f"{op}: {reply.get('error')}")
        return reply.get("result")

    def unshare(self, *kinds: str) -> str:
        """unshare(2) the helper into new namespaces: any of mnt, uts, ipc, net, pid."""
        bad = [k for k in kinds if k not in NS_FLAGS]
        if bad or not kinds:
            raise ByHandError(f"unshare takes namespace kinds out of {', '.join(NS_FLAGS)} "
                              f"(got {', '.join(bad) or 'none'}).")
        return self._call("unshare", kinds=list(kinds))

    def fork(self) -> str:
        """fork(2): the child (PID 1 of a new PID namespace, when one was unshared) serves on."""
        return self._call("fork")

    def make_private(self) -> str:
        """mount(NULL, "/", NULL, MS_REC|MS_PRIVATE): no mount event leaves or enters any more."""
        return self._call("make_private")

    def mount_overlay(self) -> str:
        """overlay on ``rootfs/``: lowerdir = the rendered tree, upper and work dirs of its own."""
        return self._call("mount_overlay")

    def pivot_root(self) -> str:
        """pivot_root(2) into ``rootfs/``; the old root is unmounted (MNT_DETACH)."""
        return self._call("pivot_root")

    def mount_proc(self) -> str:
        """mount -t proc proc /proc (inside the new root once pivoted, else ``rootfs/proc``)."""
        return self._call("mount_proc")

    def sethostname(self, name: str) -> str:
        return self._call("sethostname", name=name)

    def join_cgroup(self) -> str:
        """A cgroup of its own (``sandbox/byhand-…/apps/app``, the group a pod's app with
        resource limits gets), memory limited to 256 MiB; write our PID to its ``cgroup.procs``."""
        return self._call("join_cgroup")

    def drop_capabilities(self, keep: list[str] | None = None) -> str:
        """Keep only ``keep`` (default: what ``sandbox run`` leaves an app)."""
        return self._call("drop_capabilities", keep=keep)

    def exec(self, argv: list[str]) -> int:
        """execve(2) the app; returns its host PID (it keeps running until the lab is reset)."""
        import time
        self._call("exec", argv=list(argv))
        want = "\0".join(argv).encode()
        for _ in range(100):               # the answer comes just before the execve itself
            try:
                if Path(f"/proc/{self.pid}/cmdline").read_bytes().rstrip(b"\0") == want:
                    break
            except OSError:
                break
            time.sleep(0.05)
        self._save()
        return self.pid

    def run(self, argv: list[str]) -> str:
        """Run a command in the helper's current state (namespaces, root) and return its output
        — a look around, like ``sandbox enter``."""
        return self._call("run", argv=list(argv))

    def __repr__(self) -> str:
        return (f"ByHand(pid {self.pid}, helper {self.helper_pid}, done: "
                f"{', '.join(self.log) or 'nothing yet'})")


def start(workdir: str | os.PathLike[str], tree: str | os.PathLike[str]) -> ByHand:
    """Start the helper for a container whose files live in ``workdir`` (``rootfs``, ``upper``,
    ``work`` are made there) over the rendered ``tree``."""
    workdir, tree = Path(workdir), Path(tree)
    for d in ("rootfs", "upper", "work"):
        (workdir / d).mkdir(parents=True, exist_ok=True)
    p = subprocess.Popen([sys.executable, "-m", "sandbox.pod.byhand", "serve", str(workdir), str(tree)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                         close_fds=True)
    return ByHand(p, workdir, tree)


def _start_time(pid: int | None) -> str | None:
    """Field 22 of /proc/PID/stat: with the PID it names one process (PIDs are reused)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, TypeError):
        return None


def stop(workdir: str | os.PathLike[str]) -> list[str]:
    """Kill what :func:`start` left (the app or the helper — only a process whose PID *and*
    start time are the ones recorded) and remove its cgroup. For the lab's reset."""
    import signal
    import time
    done = []
    try:
        rec = json.loads((Path(workdir) / "byhand.json").read_text())
    except (OSError, ValueError):
        return done
    mine = []
    for key in ("pid", "helper"):
        pid = rec.get(key)
        if not isinstance(pid, int) or pid <= 1 or pid == os.getpid():
            continue
        if rec.get(f"{key}_start") is None or _start_time(pid) != rec.get(f"{key}_start"):
            continue             # gone, or the PID now names another process
        try:
            os.kill(pid, signal.SIGKILL)
            mine.append(pid)
            done.append(f"killed the {'app' if key == 'pid' else 'helper'} (process {pid})")
        except ProcessLookupError:
            pass
    for _ in range(100):         # until they are gone (their cgroup can go then)
        if not any(_start_time(p) is not None for p in mine):
            break
        time.sleep(0.05)
    from sandbox.pod import cgroups
    groups = cgroups.PodCgroups(_cgroup_name(Path(workdir)))
    if groups.dirs() and not groups.remove(timeout=2):
        done.append("removed its cgroup")
    return done


def _cgroup_name(workdir: Path) -> str:
    import zlib
    return f"byhand-{zlib.crc32(str(workdir.resolve()).encode()):08x}"


# ------------------------------------------------------------------------------ the helper

class _Helper:
    """The helper's side: its state between requests and one method per primitive (each
    returns the sentence the learner sees, or raises ByHandError / OSError)."""

    def __init__(self, workdir: Path, tree: Path) -> None:
        from sandbox.pod import stage1

        self.workdir, self.tree = workdir, tree
        self.host_ns = {k: os.stat(f"/proc/self/ns/{k}").st_ino for k in NS_FLAGS}
        self.null = os.open("/dev/null", os.O_RDWR)
        self.last_cap = stage1._last_cap()
        self.cg_name = _cgroup_name(workdir)     # now: its path is out of sight after pivot_root
        self.pivoted = False
        self.host_pid = os.getpid()              # started in the host's PID namespace
        self.out = sys.stdout
        self.ops = {"unshare": self.unshare, "make_private": self.make_private,
                    "mount_overlay": self.mount_overlay, "pivot_root": self.pivot_root,
                    "mount_proc": self.mount_proc, "sethostname": self.sethostname,
                    "join_cgroup": self.join_cgroup, "drop_capabilities": self.drop_capabilities,
                    "run": self.run}

    def ns_is_hosts(self, kind: str) -> bool:
        return os.stat(f"/proc/self/ns/{kind}").st_ino == self.host_ns[kind]

    def reply(self, **kw: object) -> None:
        self.out.write(json.dumps(kw) + "\n")
        self.out.flush()

    # -- the primitives

    def unshare(self, args: dict) -> str:
        from sandbox._sys import libc
        flags = 0
        for k in args["kinds"]:
            flags |= NS_FLAGS[k]
        libc.unshare(flags)
        return f"new {', '.join(args['kinds'])} namespace(s)" + (
            "; the PID namespace applies to children: fork next" if "pid" in args["kinds"] else "")

    def make_private(self, args: dict) -> str:
        from sandbox._sys import libc
        if self.ns_is_hosts("mnt"):
            raise ByHandError("refused: this is the host's mount namespace, and making / private "
                              "here would change the machine — unshare mnt first")
        libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
        return "/ and everything below it: private propagation"

    def mount_overlay(self, args: dict) -> str:
        from sandbox._sys import libc
        rootfs = self.workdir / "rootfs"
        libc.mount("overlay", str(rootfs), "overlay", 0,
                   f"lowerdir={self.tree},upperdir={self.workdir / 'upper'},"
                   f"workdir={self.workdir / 'work'}")
        return f"overlay on {rootfs}" + (" — in the host's mount namespace: the host sees it"
                                         if self.ns_is_hosts("mnt") else "")

    def pivot_root(self, args: dict) -> str:
        from sandbox._sys import libc
        if self.ns_is_hosts("mnt"):
            raise ByHandError("refused: pivot_root in the host's mount namespace would move the "
                              "root of every process on the machine — unshare mnt first")
        rootfs = self.workdir / "rootfs"
        try:
            os.chdir(rootfs)
            libc.pivot_root(".", ".")
        except OSError as e:
            os.chdir("/")
            if e.errno == 1:
                raise ByHandError("not permitted: pivot_root needs CAP_SYS_ADMIN — were the "
                                  "capabilities dropped already?") from None
            raise ByHandError(f"{e.strerror}: the new root must be a mount point (mount the "
                              "overlay first) and neither it nor / may have shared propagation "
                              "(make / private first)") from None
        libc.umount(".", libc.MNT_DETACH)
        os.chdir("/")
        self.pivoted = True
        return "/ is now the overlay; the old root is detached"

    def mount_proc(self, args: dict) -> str:
        from sandbox._sys import libc
        target = "/proc" if self.pivoted else str(self.workdir / "rootfs" / "proc")
        os.makedirs(target, exist_ok=True)
        libc.mount("proc", target, "proc", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
        return f"procfs on {target}"

    def sethostname(self, args: dict) -> str:
        import socket
        if self.ns_is_hosts("uts"):
            raise ByHandError("refused: this is the host's UTS namespace; sethostname would rename "
                              "the machine — unshare uts first")
        socket.sethostname(args["name"])
        return f"hostname {args['name']}"

    def join_cgroup(self, args: dict) -> str:
        from sandbox._sys import cgroupfs
        from sandbox.pod import cgroups
        if self.pivoted:
            raise ByHandError("after pivot_root the host's /sys/fs/cgroup is out of sight: join "
                              "the cgroup before pivoting (stage1 does)")
        dirs = cgroups.PodCgroups(self.cg_name).create(
            {"app": cgroups.Limits(memory_bytes=MEMORY_LIMIT)})["app"]
        for d in dirs:
            cgroupfs.join(d)            # our PID into its cgroup.procs
        return f"joined {', '.join(dirs)}"

    def drop_capabilities(self, args: dict) -> str:
        from sandbox.pod import ace, stage1
        keep = args.get("keep") or list(ace.DEFAULT_CAPS)
        unknown = [c for c in keep if c not in ace.CAPS]
        if unknown:
            raise ByHandError(f"unknown capabilities {', '.join(unknown)}")
        stage1.drop_capabilities(keep, self.last_cap)
        return f"kept {len(keep)} capabilities"

    def run(self, args: dict) -> str:
        cp = subprocess.run(args["argv"], capture_output=True, text=True, timeout=30)
        return cp.stdout + cp.stderr

    # -- the two requests that change which process serves

    def fork(self) -> int | None:
        """In the parent: the child's exit status, once it ends (the parent serves no more).
        In the child: None, after it learnt its host PID and said so."""
        r, w = os.pipe()
        pid = os.fork()
        if pid:                       # the parent: tell the child its host PID, then wait
            os.close(r)               # for it, like stage1's relay
            os.write(w, str(pid).encode())
            os.close(w)
            _, st = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)
        os.close(w)
        self.host_pid = int(os.read(r, 32) or self.host_pid)
        os.close(r)
        self.reply(ok=True, result=f"forked: I am PID {os.getpid()} in my PID namespace, "
                                   f"{self.host_pid} on the host", pid=self.host_pid)
        return None

    def exec(self, args: dict) -> None:
        """Become the app; returns only when the request is refused (and answered)."""
        argv = args.get("argv") or []
        try:
            if not argv:
                raise ByHandError("exec needs a command, e.g. ['/bin/busybox', 'sleep', '100000']")
            path = argv[0]
            if not os.path.exists(path):
                raise ByHandError(f"{path} does not exist in this process's / "
                                  + ("(the image's)" if self.pivoted else "(still the host's: pivot_root first?)"))
        except ByHandError as e:
            self.reply(ok=False, error=str(e))
            return
        self.reply(ok=True, result=f"exec {' '.join(argv)}", pid=self.host_pid)
        sys.stdout.flush()
        for fd in (0, 1, 2):
            os.dup2(self.null, fd)
        try:
            os.execv(path, argv)
        except OSError:
            os._exit(127)

    def answer(self, op: object, args: dict) -> None:
        """Carry out one primitive and answer; every failure is one answer, never a crash."""
        try:
            fn = self.ops.get(op) if isinstance(op, str) else None
            if fn is None:
                raise ByHandError(f"unknown primitive {op}")
            self.reply(ok=True, result=fn(args))
        except ByHandError as e:
            self.reply(ok=False, error=str(e))
        except OSError as e:
            need = (" — it needs CAP_SYS_ADMIN: were the capabilities dropped already?"
                    if e.errno == 1 else "")
            self.reply(ok=False, error=f"{e.strerror or e}{need}")
        except Exception as e:  # noqa: BLE001 - every failure is one answer, never a crash
            self.reply(ok=False, error=str(e))


def _serve(workdir: Path, tree: Path) -> int:
    """The helper's loop: one JSON request a line on stdin, one answer a line on stdout."""
    h = _Helper(workdir, tree)
    for line in sys.stdin:
        try:
            req = json.loads(line)
            op, args = req["op"], req.get("args") or {}
        except (ValueError, KeyError, TypeError):
            h.reply(ok=False, error="a request is one JSON object per line")
            continue
        if op == "fork":
            code = h.fork()
            if code is not None:
                return code
        elif op == "exec":
            h.exec(args)
        else:
            h.answer(op, args)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "serve":
        return _serve(Path(argv[1]), Path(argv[2]))
    print("usage: python -m sandbox.pod.byhand serve WORKDIR TREE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
