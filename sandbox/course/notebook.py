"""A notebook's own state: ``$SANDBOX_DIR/notebooks/<name>/``, and the rule that a notebook
removes only what it made.

Every notebook keeps what it makes in one directory of its own under the kit's state directory
(so ``sandbox reset`` finds it), and removes only what it made:

* :func:`start` gives the notebook that directory, empty. If a previous run of the same
  notebook left something behind — its kernel died, or the first cell ran again — what *that run
  recorded* is removed first (nothing else: another notebook's namespaces, the learner's own
  ones, the machine's are never touched).
* :attr:`NotebookState.netns` is a :class:`sandbox.net.netns.Session` whose namespaces are
  named ``sbx-nbNN-<pid>-<n>`` and recorded (with their inodes) in ``netns.json`` as they are
  made; its scratch directories live inside the notebook's directory.
* What the notebook adds to the state it shares with the learner's own work is recorded in
  ``journal.json`` as it happens: images it imported (:meth:`NotebookState.store`), keys it
  trusted (:meth:`NotebookState.trust_store`), pods it ran (:meth:`NotebookState.pod`). An image
  that was in the store before, a key that was trusted before, stay.
* :meth:`NotebookState.close` (the last cell; also run when the kernel exits, whatever cell
  failed) stops what lives in the kernel (:meth:`NotebookState.on_close`: a discovery server),
  undoes the journal newest first, removes the trees rendered meanwhile (a cache), the
  namespaces, then the directory.

    from sandbox.course import notebook
    nb = notebook.start("06")     # nb.path = $SANDBOX_DIR/notebooks/06
    node = nb.netns.node()        # a node netns, removed at the end
    store = nb.store()            # the kit's image store; what this notebook imports is undone
    …
    nb.close()
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from sandbox import config
from sandbox._sys import mountinfo
from sandbox.errors import SandboxError

_NAME = re.compile(r"^[0-9]{2}[a-z]?(-[a-z0-9-]+)?$")
_open: dict[str, "NotebookState"] = {}     # name -> the state this process opened
JOURNAL = "journal.json"


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


# ------------------------------------------------------------------------------ the journal


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / JOURNAL).read_text())
    except (OSError, ValueError):
        return {}


def _undo_item(item: dict[str, Any]) -> str | None:
    """Undo one journal entry; a sentence saying what was done (None: nothing was left)."""
    kind = item.get("kind")
    if kind == "pod":
        from sandbox.pod import stage0 as pod
        uuid = item["uuid"]
        try:
            state, _ = pod.find(uuid)
        except SandboxError:
            return None
        if state == "run":
            with contextlib.suppress(SandboxError):
                pod.stop(uuid, timeout=5)
        with contextlib.suppress(SandboxError):
            pod.remove(uuid)
        pod.drop_idle_netns()
        return f"stopped and removed pod {uuid[:8]}"
    if kind == "trust":
        from sandbox.trust.truststore import TrustError, TrustStore
        store = TrustStore(item["root_dir"], item.get("system_root"))
        try:
            store.remove(item["fingerprint"], item.get("prefix"), root=item.get("prefix") is None)
        except TrustError:
            return None
        return f"no longer trusting key {item['fingerprint'][:16]}… for {item.get('prefix') or 'every name'}"
    if kind == "image":
        from sandbox.image.store import Store
        from sandbox.render import treestore
        store = Store(item["store"])
        for tree in treestore.trees_of(item["id"]):
            with contextlib.suppress(SandboxError, OSError):
                treestore.remove(tree)
        try:
            store.remove(item["id"])
        except SandboxError:
            return None
        return f"removed image {item.get('name', '')} {item['id'][:19]}"
    if kind == "tree":
        from sandbox.render import treestore
        tree = treestore.lookup(item["key"])
        if tree is None:
            return None
        try:
            treestore.remove(tree)
        except SandboxError:
            return None
        return f"removed the rendered tree of {tree.image_id[:19]}"
    return None


def _tree_keys() -> set[str]:
    from sandbox.render import treestore
    try:
        return {t.key for t in treestore.list_trees()}
    except (OSError, SandboxError):
        return set()


def _undo_journal(path: Path) -> list[str]:
    """Undo what ``path``'s journal lists, newest first, then the trees rendered since it began
    (the tree store is a cache: a tree another process rendered meanwhile is rendered again
    when needed, and one in use is never removed)."""
    journal = _read(path)
    done = []
    items = list(reversed(journal.get("made", [])))
    if "trees_before" in journal:
        items += [{"kind": "tree", "key": k}
                  for k in sorted(_tree_keys() - set(journal["trees_before"]))]
    for item in items:
        try:
            line = _undo_item(item)
        except Exception as e:  # noqa: BLE001 - one stuck item must not keep the rest
            line = f"could not undo {item.get('kind')}: {e}"
        if line:
            done.append(line)
    (path / JOURNAL).unlink(missing_ok=True)
    return done


def _hollow(d: Path) -> bool:
    """Only empty directories, lock files (``.lock``, empty files in ``.locks/``) and an empty
    JSON index below ``d``."""
    if not d.is_dir() or d.is_symlink():
        return False
    for root, _dirs, files in os.walk(d):
        for f in files:
            p = Path(root) / f
            if f == ".lock" or (Path(root).name == ".locks" and p.stat().st_size == 0):
                continue
            if f == "index.json" and p.read_text().strip() in ("{}", "[]", ""):
                continue
            return False
    return True


def _remove_dir(path: Path, state_before: list[str] | None) -> list[str]:
    """The notebook's directory, ``notebooks/`` when it was the last one, and directories of the
    state dir the notebook's work created and left empty (an image store whose only image it
    removed, fetch's ``tmp/``): not the learner's, so not left behind."""
    done = [f"unmounted {m}" for m in mountinfo.umount_below(path)]
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
        done.append(str(path))
    with contextlib.suppress(OSError):
        path.parent.rmdir()
    state = config.sandbox_dir()
    if state_before is not None and state.is_dir():
        new = sorted(set(os.listdir(state)) - set(state_before))
        for name in new:
            if _hollow(state / name):
                shutil.rmtree(state / name, ignore_errors=True)
        # The default network's files (its conflist, plugin launchers, host-local's state)
        # appeared with the notebook's pod; they go when no pod of this state dir is left.
        if {"net.d", "cni"} & set(new) and _no_pods(state):
            for name in ("net.d", "cni"):
                if name in new:
                    shutil.rmtree(state / name, ignore_errors=True)
    return done


def _no_pods(state: Path) -> bool:
    pods = state / "pods"
    return not any(d.iterdir() for d in pods.iterdir() if d.is_dir()) if pods.is_dir() else True


def recover(path: str | os.PathLike[str]) -> list[str]:
    """Remove what a notebook run that died without closing left in ``path``: what its journal
    lists, the namespaces its record lists, then the directory. For ``sandbox reset`` and for the
    next :func:`start` of the same notebook."""
    from sandbox.net import netns
    path = Path(path)
    state_before = _read(path).get("state_before")
    done = _undo_journal(path)
    done += netns.Session.recover(path / "netns.json")
    done += _remove_dir(path, state_before)
    return done


# ------------------------------------------------------------------------------ a notebook's state


class NotebookState:
    """One notebook's directory, its namespaces, what it added to the shared state, and the
    cleanup of all of it."""

    def __init__(self, name: str, path: Path) -> None:
        from sandbox.net import netns
        self.name = name
        self.path = path
        tag = name.split("-", 1)[0]
        self.netns = netns.Session(prefix=f"{config.NAME_PREFIX}-nb{tag}", record=path / "netns.json",
                                   scratch=path / "scratch")
        self._closers: list[Callable[[], Any]] = []
        self.closed = False
        atexit.register(self.close)

    # -- the journal
    def _record(self, item: dict[str, Any]) -> None:
        j = _read(self.path)
        j.setdefault("made", []).append(item)
        tmp = self.path / f".{JOURNAL}.tmp"
        tmp.write_text(json.dumps(j, indent=1))
        tmp.replace(self.path / JOURNAL)

    def made(self) -> list[dict[str, Any]]:
        """What this notebook added to the shared state so far (the journal's entries)."""
        return list(_read(self.path).get("made", []))

    # -- shared state, recorded
    def store(self, root: str | os.PathLike[str] | None = None):
        """The image store (the learner's own), remembering which images *this notebook*
        imported: only those are removed at the end."""
        from sandbox.image.store import Store
        nb = self

        class NotebookStore(Store):
            # every way into the store (import_aci, fetch's stage + commit) ends in _commit
            def _commit(self, tmp, source, latest, steps):  # type: ignore[override]
                before = set(self._read_index())
                img = super()._commit(tmp, source, latest, steps)
                if img.id not in before:
                    nb._record({"kind": "image", "id": img.id, "name": img.name,
                                "store": str(self.root)})
                return img
        return NotebookStore(root)

    def trust_store(self, root: str | os.PathLike[str] | None = None,
                    system_root: str | os.PathLike[str] | None = None):
        """The trust store, remembering which (key, prefix) pairs *this notebook* added."""
        from sandbox.trust import pgp
        from sandbox.trust.truststore import TrustStore, check_prefix
        nb = self

        class NotebookTrustStore(TrustStore):
            def add(self, prefix, key_bytes, *, root=False, steps=None):  # type: ignore[override]
                certs = pgp.read_keys(key_bytes)
                try:
                    target = self._dir(self.root, None if root else check_prefix(prefix or ""))
                except SandboxError:
                    target = None          # add() says what is wrong with the prefix
                was = len(certs) == 1 and target is not None and (target / certs[0].fingerprint).is_file()
                path = super().add(prefix, key_bytes, root=root, steps=steps)
                if not was:
                    nb._record({"kind": "trust", "fingerprint": path.name,
                                "prefix": None if root else path.parent.relative_to(
                                    self.root / "prefix.d").as_posix(),
                                "root_dir": str(self.root), "system_root": str(self.system_root)})
                return path
        return NotebookTrustStore(root, system_root)

    def pod(self, pod: Any) -> Any:
        """Remember a pod this notebook started (stopped and removed at the end); returns it."""
        self._record({"kind": "pod", "uuid": getattr(pod, "uuid", pod)})
        return pod

    def on_close(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Run ``fn`` at the end (a server or anything else that lives in this kernel)."""
        self._closers.append(fn)
        return fn

    # -- for cells
    def cli(self, *args: str, timeout: float = 120) -> str:
        """Run the ``sandbox`` command of this kernel's own environment (never a hard-coded
        path) on the same state directory; returns what it printed."""
        cp = subprocess.run([sys.executable, "-m", "sandbox", *args], capture_output=True,
                            text=True, timeout=timeout,
                            env={**os.environ, "SANDBOX_DIR": str(config.sandbox_dir())})
        return cp.stdout + (cp.stderr if cp.returncode else "")

    # -- the end
    def close(self) -> list[str]:
        """Stop what lives in the kernel, undo what the notebook made (newest first), remove its
        namespaces, then its directory; returns what was removed. Idempotent."""
        if self.closed:
            return []
        self.closed = True
        gone = []
        for fn in reversed(self._closers):
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                gone.append(f"could not stop {getattr(fn, '__qualname__', fn)}: {e}")
        self._closers.clear()
        state_before = _read(self.path).get("state_before")
        gone += _undo_journal(self.path)
        gone += self.netns.close()
        gone += _remove_dir(self.path, state_before)
        if _open.get(self.name) is self:
            del _open[self.name]
        return gone

    def __enter__(self) -> "NotebookState":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NotebookState({self.name!r}: {self.path})"


def abandoned() -> list[str]:
    """Notebooks whose state directory belongs to a kernel that is gone (it died without its
    last cell or exit handler): what they made is still there (``sandbox doctor`` says so)."""
    out = []
    d = notebooks_dir()
    for path in sorted(d.iterdir()) if d.is_dir() else []:
        try:
            owner = json.loads((path / "owner.json").read_text())
        except (OSError, ValueError):
            owner = {}
        if not owner or not _alive(owner):
            out.append(path.name)
    return out


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
        recover(path)
    try:
        path.mkdir(parents=True)
    except OSError as e:
        raise NotebookStateError(f"Cannot create {path} ({e.strerror}).",
                                 hint="Run as root, or point $SANDBOX_DIR somewhere writable.") from e
    owner_file.write_text(json.dumps(_owner()))
    (path / JOURNAL).write_text(json.dumps({
        "started": time.time(), "trees_before": sorted(_tree_keys()),
        "state_before": sorted(os.listdir(config.sandbox_dir())), "made": []}, indent=1))
    state = _open[name] = NotebookState(name, path)
    return state


def sessions() -> list[Path]:
    """Every notebook directory under the state dir (for ``sandbox reset``)."""
    d = notebooks_dir()
    return sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []
