"""A pod's start, step by step, told by the processes that do it (for a stepper).

A pod starts in several processes: stage0's supervisor, the pod's PID 1 (in a new PID namespace),
one app runner per app (each in its own mount namespace, then ``pivot_root`` and ``exec``). When
the caller asked for it (a snapshotting ``Steps`` given to ``stage0.run_prepared``), each of them
appends one JSON line per step to ``steps.jsonl`` in the pod directory: when, who (its role, its
PID as it sees it and as the host sees it), what it did, and the inode of each of its namespaces
at that moment (``/proc/self/ns/*``). stage0 reads the lines back into the caller's ``Steps``.

Nothing is written otherwise: :func:`note` returns at once while no journal is open. This module
is imported on the pod start path, so it imports only what that path has already loaded.
"""
from __future__ import annotations

import json
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "steps.jsonl"
FLAG = "journal"                  # present in a prepared pod's directory: write the journal
NAMESPACES = ("net", "pid", "mnt", "ipc", "uts")
_fd = -1


def wanted(pod_dir: str | os.PathLike[str]) -> bool:
    return os.path.exists(os.path.join(pod_dir, FLAG))


def open_for(pod_dir: str | os.PathLike[str]) -> None:
    """Start writing this process's lines (children forked later write through the same fd;
    it is closed on exec, so an app never inherits it). Opened anew in each stage: a stage
    forked with its descriptors closed must not write to a number that is gone."""
    global _fd
    _fd = os.open(os.path.join(pod_dir, NAME),
                  os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


def note(role: str, action: str, what: str, **detail: Any) -> None:
    """One line: this process, what it did, its namespaces now. A no-op with no journal open."""
    if _fd < 0:
        return
    os.write(_fd, json.dumps(line(role, action, what, **detail), default=str).encode() + b"\n")


def line(role: str, action: str, what: str, **detail: Any) -> dict[str, Any]:
    """The line :func:`note` writes, for the calling process (one write: lines never mix)."""
    ns = {}
    for n in NAMESPACES:
        try:
            ns[n] = os.stat(f"/proc/self/ns/{n}").st_ino
        except OSError:
            pass
    try:   # while /proc is the host's, /proc/self names this process by its host PID
        seen_as = int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        seen_as = None
    return {"t": time.monotonic(), "role": role, "pid": os.getpid(), "proc_pid": seen_as,
            "ppid": os.getppid(), "action": action, "what": what, "detail": detail, "ns": ns}


def read(pod_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The lines written so far, in time order."""
    try:
        with open(os.path.join(pod_dir, NAME), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    lines = []
    for chunk in raw.splitlines():
        try:
            lines.append(json.loads(chunk))
        except ValueError:
            continue           # a line still being written
    return sorted(lines, key=lambda l: l.get("t", 0.0))
