"""A notebook's own state: ``$SANDBOX_DIR/notebooks/<name>/``.

Every notebook keeps what it makes in one directory of its own under the kit's state directory
(so ``sandbox reset`` finds it), and removes only what it made:

* :func:`start` gives the notebook that directory, empty. If a previous run of the same
  notebook left something behind — its kernel died, or the first cell ran again — what *that run
  recorded* is removed first (nothing else: another notebook's namespaces, the learner's own
  ones, the machine's are never touched).
* :attr:`NotebookState.netns` is a :class:`sandbox.net.netns.Session` whose namespaces are
  named ``sbx-nbNN-<pid>-<n>`` and recorded (with their inodes) in ``netns.json`` as they are
  made; its scratch directories live inside the notebook's directory.
* :meth:`NotebookState.close` (the last cell; also run when the kernel exits, whatever cell
  failed) removes the namespaces, then the directory.

    from sandbox.course import notebook
    nb = notebook.start("06")     # nb.path = $SANDBOX_DIR/notebooks/06
    node = nb.netns.node()        # a node netns, removed at the end
    …
    nb.close()
"""
from __future__ import annotations

import atexit
import json
import os
import re
import shutil
from pathlib import Path

from sandbox import config
from sandbox.errors import SandboxError

_NAME = re.compile(r"^[0-9]{2}[a-z]?(-[a-z0-9-]+)?$")
_open: dict[str, "NotebookState"] = {}     # name -> the state this process opened


class NotebookStateError(SandboxError):
    """A notebook's state directory cannot be used."""


def notebooks_dir() -> Path:
    """``$SANDBOX_DIR/notebooks``: one directory per notebook."""
    return config.sandbox_dir() / "notebooks"


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks): with the PID, it names one
    process (a PID alone may have been reused by now). None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner() -> dict[str, object]:
    return {"pid": os.getpid(), "start": _start_time(os.getpid())}


def _alive(owner: dict[str, object]) -> bool:
    pid = owner.get("pid")
    return isinstance(pid, int) and _start_time(pid) is not None and _start_time(pid) == owner.get("start")


class NotebookState:
    """One notebook's directory, its namespaces, and the cleanup of both."""

    def __init__(self, name: str, path: Path) -> None:
        from sandbox.net import netns
        self.name = name
        self.path = path
        tag = name.split("-", 1)[0]
        self.netns = netns.Session(prefix=f"{config.NAME_PREFIX}-nb{tag}", record=path / "netns.json",
                                   scratch=path / "scratch")
        self.closed = False
        atexit.register(self.close)

    def close(self) -> list[str]:
        """Remove the notebook's namespaces, then its directory; returns what was removed."""
        if self.closed:
            return []
        gone = self.netns.close()
        if self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
            gone.append(str(self.path))
        self.closed = True
        if _open.get(self.name) is self:
            del _open[self.name]
        return gone

    def __enter__(self) -> "NotebookState":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NotebookState({self.name!r}: {self.path})"


def start(name: str) -> NotebookState:
    """The notebook ``name``'s directory (``"05"``, ``"06b"``…), empty and owned by this process.

    What an earlier run of the same notebook left is removed first: by this process (the first
    cell ran again), or by a process that is gone (a kernel that died: only what its record lists).
    A run still alive in another kernel is an error, not something to remove."""
    if not _NAME.match(name):
        raise NotebookStateError(f"'{name}' is not a notebook name.",
                                 hint="Use the notebook's number, e.g. '06' or '06b'.")
    mine = _open.get(name)
    if mine is not None:
        mine.close()
    path = notebooks_dir() / name
    owner_file = path / "owner.json"
    if path.exists():
        try:
            owner = json.loads(owner_file.read_text())
        except (OSError, ValueError):
            owner = {}
        if owner and _alive(owner) and owner.get("pid") != os.getpid():
            raise NotebookStateError(
                f"Notebook {name} is open in another kernel (process {owner['pid']}).",
                hint="Shut that kernel down first, or give this one another SANDBOX_DIR.")
        from sandbox.net import netns
        netns.Session.recover(path / "netns.json")
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    owner_file.write_text(json.dumps(_owner()))
    state = _open[name] = NotebookState(name, path)
    return state
