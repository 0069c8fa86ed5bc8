"""Start a Python function as a child process by fork alone (no new interpreter).

stage0 starts two long-lived processes per pod (the supervisor, then stage1). Exec'ing
``python -m …`` for each costs a whole interpreter start-up and the imports again (25–50 ms
each, more than all the namespace work); a forked child already has every module loaded.
Forking is only safe while the process has a single thread (another thread may hold a lock
the child would then never see released), so :func:`can_fork` says when to fall back to
``subprocess.Popen`` of the module instead: in a Jupyter kernel, or in any process that has
started a thread (tqdm's monitor thread is turned off for this reason, see sandbox._progress).

:class:`Child` mirrors the part of ``subprocess.Popen`` the callers use (``pid``, ``poll``,
``wait(timeout)`` raising ``TimeoutExpired``, ``kill``, ``returncode``); its ``wait`` sleeps on a
pidfd, so a caller waiting with a timeout wakes the moment the child exits.
"""
from __future__ import annotations

import os
import select
import signal
import sys
import threading

TYPE_CHECKING = False   # typing is for annotations only: importing it costs ~2 ms per pod start
if TYPE_CHECKING:
    from typing import Any, Callable


def can_fork() -> bool:
    """True when this process may fork and keep running Python in the child (and
    ``$SANDBOX_NO_FORK`` is not set: it makes every stage a fresh interpreter, for comparison)."""
    return (threading.active_count() == 1 and hasattr(os, "pidfd_open")
            and not os.environ.get("SANDBOX_NO_FORK"))


class Child:
    """A forked child: ``Popen``-like waiting and signalling."""

    def __init__(self, pid: int, args: str) -> None:
        self.pid, self.args = pid, args
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:       # reaped elsewhere (e.g. a SIGCHLD handler)
                pid, status = self.pid, 0
            if pid == 0:
                return None
            self.returncode = os.waitstatus_to_exitcode(status)
            os.close(self._pidfd)
        return self.returncode

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self, timeout: float | None = None) -> int:
        code = self.wait_for(timeout)
        if code is None:
            import subprocess
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def wait_for(self, timeout: float | None = None) -> int | None:
        """The exit code, or None when the child still runs after ``timeout`` seconds."""
        if self.returncode is None and timeout is not None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                return None
        return self._reap(0)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __del__(self) -> None:
        # Forgotten while it still runs (e.g. a detached pod's supervisor): reaped later by
        # _reap_forgotten, so no zombie stays behind (what subprocess does for a Popen).
        try:
            if self.poll() is None:
                os.close(self._pidfd)
                _forgotten.append(self.pid)
        except OSError:
            pass


_forgotten: list[int] = []


def _reap_forgotten() -> None:
    for pid in list(_forgotten):
        try:
            done = os.waitpid(pid, os.WNOHANG)[0] != 0
        except ChildProcessError:
            done = True
        if done:
            _forgotten.remove(pid)


def start_time(pid: int | str = "self") -> int | None:
    """When the process started, in clock ticks since boot (proc(5), /proc/PID/stat field 22),
    or None when it is gone. A pid is recycled; (pid, start time) names one process for good."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) is in parentheses and may hold spaces and ')': split after it
    return int(data[data.rindex(b")") + 2:].split()[19])


def alive(pid: int | None, started: int | None) -> bool:
    """Is the process that had ``pid`` and started at ``started`` still running (not a zombie)?"""
    if not pid:
        return False
    now = start_time(pid)
    if now is None or (started is not None and now != started):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2:data.rindex(b")") + 3] != b"Z"
    except OSError:
        return False


def wait_for(proc: "Child | Any", timeout: float) -> int | None:
    """``proc``'s exit code, or None if it still runs after ``timeout`` seconds: for a
    :class:`Child` or a ``subprocess.Popen`` (the fallback), without importing subprocess
    for the first."""
    if isinstance(proc, Child):
        return proc.wait_for(timeout)
    import subprocess
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def end(proc: Any, timeout: float = 5.0) -> None:
    """End a ``subprocess.Popen`` child we started: SIGTERM, up to ``timeout`` seconds to go,
    then SIGKILL; reaped either way (no zombie). Nothing to do if it already ended."""
    if proc.poll() is None:
        proc.terminate()
        if wait_for(proc, timeout) is None:
            proc.kill()
            proc.wait()


def fork_call(fn: Callable[[], int], *, args: str, output: str | None = None,
              new_session: bool = False, keep_fds: tuple[int, ...] = ()) -> Child:
    """Run ``fn()`` in a forked child and exit with its return value.

    The child gets /dev/null as stdin, ``output`` (appended) as stdout and stderr when given,
    and no other inherited descriptor except ``keep_fds`` — so it holds no lock and no socket
    of the parent's by accident (``Popen``'s close_fds, done by hand)."""
    _reap_forgotten()
    sys.stdout.flush()
    sys.stderr.flush()
    # Memory pages are shared until one side writes them, and a garbage collection (in the
    # child or in the parent) writes to every object it visits. Frozen objects are never
    # visited: ~10 ms less per pod start. Only cyclic garbage that exists right now is thereby
    # never reclaimed (objects freed by reference counting still are).
    import gc
    gc.freeze()
    pid = os.fork()
    if pid:
        return Child(pid, args)
    code = 1
    try:
        if new_session:
            os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        if output is not None:
            out = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            # print() goes to the new descriptors even where sys.stdout was replaced (pytest's
            # capture, a notebook's stream): their own descriptors are closed below
            sys.stdout = open(1, "w", buffering=1, closefd=False)
            sys.stderr = open(2, "w", buffering=1, closefd=False)
        low = 3
        for fd in sorted(keep_fds):
            if fd >= low:
                os.closerange(low, fd)
                low = fd + 1
        os.closerange(low, os.sysconf("SC_OPEN_MAX"))
        code = fn()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001 - the child must never return into the caller
        try:
            print(f"sandbox: {args}: {e}", file=sys.stderr)
        except Exception:  # noqa: BLE001
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)
