"""Notebook 05 (seed slide 48): what ``unshare -n mount --bind /proc/self/ns/net myns`` does,
shown with the real ``unshare(1)`` of util-linux.

* :func:`exec_in_place` — ``unshare(1)`` calls ``unshare(2)`` on *itself*, then execs the
  command in place: same PID, new network namespace.
* :func:`slide_line` — the slide's line as written (``-n`` only: the mount namespace is still
  ours, so the bind mount lands in our mount table and outlives the process — the named handle),
  and with ``-m`` added (a private mount namespace: the mount dies with the process).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError


def _unshare() -> str:
    import shutil
    tool = shutil.which("unshare", path="/usr/bin:/bin:" + os.environ.get("PATH", ""))
    if tool is None:
        raise SandboxError("unshare(1) is missing.", hint="It is in Debian's util-linux package.")
    return tool


def exec_in_place() -> dict[str, Any]:
    """Start ``unshare -n sh -c 'echo $$; readlink /proc/$$/ns/net'`` and compare: the PID
    the shell reports is the PID of the process we started as ``unshare``."""
    from sandbox.net import netns
    p = subprocess.Popen([_unshare(), "-n", "sh", "-c", "echo $$; readlink /proc/$$/ns/net"],
                         stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=10)
    pid, ns = out.split()
    return {"PID of the process started as unshare": p.pid,
            "PID the shell reports ($$)": int(pid),
            "the same process (exec, no fork)": int(pid) == p.pid,
            "the shell's netns": ns,
            "our netns": f"net:[{netns.current_inode()}]"}


def slide_line(path: str | os.PathLike[str], *, mount_ns: bool = False,
               session: Any = None) -> dict[str, Any]:
    """``touch PATH; unshare -n [-m] mount --bind /proc/self/ns/net PATH`` with the real tools,
    then: does PATH hold a network namespace, and is it in *our* mount table? ``session``
    (a :class:`sandbox.net.netns.Session`) removes the handle at its close."""
    from sandbox._sys import mountinfo
    from sandbox.net import netns
    p = Path(path)
    p.touch()
    if session is not None:
        session.adopt(p)
    argv = [_unshare(), "-n", *(["-m"] if mount_ns else []), "mount", "--bind",
            "/proc/self/ns/net", str(p)]
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    return {"command": "unshare " + " ".join(argv[1:]),
            "exit code": cp.returncode,
            "PATH holds a netns afterwards": netns.is_netns(p),
            "the mount is in our mount table": str(p) in mountinfo.mount_points()}
