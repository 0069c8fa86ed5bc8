"""The tree store: each image + resolved dependency set rendered once, and a clean copy of it for
every execution (ace.md §Filesystem Setup: "Every execution of an app MUST start from a clean
copy of this rendered filesystem"; the spec leaves *how* open and mentions overlay filesystems).

Like rkt's tree store (Documentation/devel/architecture.md §Image lifecycle), under
``$SANDBOX_DIR/trees``::

    deps-sha512-<hex>/          key: hash of the flattened image IDs (render.DependencyGraph.key)
        rootfs/                 the rendered filesystem (never written after rendering)
        manifest                the top image's manifest
        trace.json              the render trace (who wrote / overrode / filtered each path)
        tree.index              one JSON line per path: type, mode, owner, content hash / target
        hash                    sha512 of tree.index: the hash of the rendered tree
        info.json               top image, layers, when
        rendered                flag written last: the tree is complete
    .tmp-…/                     a render in progress (renamed to its key when complete)
    .locks/<key>                flock(2) so two processes never render one key twice

A clean copy (:func:`clean_copy`) is an overlay mount (lower = the tree's rootfs, upper and work
private to the execution) or, where overlayfs is not available, a plain ``cp -a`` copy. Its
state lives under ``$SANDBOX_DIR/copies/sbx-…`` until :meth:`CleanCopy.close`.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from sandbox import config, render
from sandbox._sys import inroot, libc, mountinfo
from sandbox.errors import NotRootError, SandboxError
from sandbox.steps import Steps, record, snapshotting

BUFSIZE = 1 << 20


def trees_dir() -> Path:
    return config.sandbox_dir() / "trees"


def copies_dir() -> Path:
    return config.sandbox_dir() / "copies"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------
# The hash of a rendered tree


def tree_index(rootfs: Path | str) -> list[str]:
    """One canonical JSON line per path below ``rootfs`` (sorted; symlinks never followed):
    ``[path, type, mode, uid, gid, payload]`` with payload = sha512 of a file's content, a
    symlink's target, or "" for directories and fifos."""
    root = str(rootfs)
    lines: list[str] = []

    def walk(rel: str) -> None:
        full = root + rel
        with os.scandir(full) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            path = f"{rel}/{e.name}"
            st = e.stat(follow_symlinks=False)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                typ, payload = "dir", ""
            elif stat.S_ISLNK(st.st_mode):
                typ, payload = "symlink", os.readlink(e.path)
            elif stat.S_ISREG(st.st_mode):
                typ, payload = "file", _sha512_file(e.path)
            elif stat.S_ISFIFO(st.st_mode):
                typ, payload = "fifo", ""
            else:
                typ, payload = "other", f"{st.st_mode:o}"
            lines.append(json.dumps([path, typ, f"{mode:04o}", st.st_uid, st.st_gid, payload],
                                    separators=(",", ":")))
            if typ == "dir":
                walk(path)

    walk("")
    return lines


def _sha512_file(path: str) -> str:
    h = hashlib.sha512()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(BUFSIZE):
            h.update(chunk)
    return h.hexdigest()


def hash_index(lines: list[str]) -> str:
    return "sha512-" + hashlib.sha512(("\n".join(lines) + "\n").encode()).hexdigest()


def diff_index(recorded: list[str], now: list[str]) -> list[str]:
    """What changed between two tree indexes, one sentence per path."""
    a = {json.loads(l)[0]: json.loads(l) for l in recorded}
    b = {json.loads(l)[0]: json.loads(l) for l in now}
    out = []
    for p in sorted(set(a) | set(b)):
        if p not in b:
            out.append(f"{p} was removed")
        elif p not in a:
            out.append(f"{p} was added")
        elif a[p] != b[p]:
            what = [n for n, x, y in zip(["path", "type", "mode", "uid", "gid", "content"],
                                         a[p], b[p]) if x != y]
            if a[p][1] == "symlink" and "content" in what:
                what[what.index("content")] = "link target"
            out.append(f"{p} changed ({', '.join(what)})")
    return out


# ---------------------------------------------------------------------------------------------
# Trees


@dataclass
class Tree:
    """A rendered image in the tree store."""

    key: str
    path: Path
    image_id: str
    name: str
    labels: dict[str, str]
    hash: str
    rendered_at: str
    layers: list[dict[str, Any]]
    hit: bool = False             # True when this call found it already rendered

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    def trace(self) -> render.RenderTrace:
        return render.RenderTrace.from_json(json.loads((self.path / "trace.json").read_text()))

    def index(self) -> list[str]:
        return (self.path / "tree.index").read_text().splitlines()

    def verify(self, steps: Steps | None = None) -> list[str]:
        """Re-hash the tree; [] when it is as rendered, else one sentence per changed path."""
        now = tree_index(self.rootfs)
        h = hash_index(now)
        record(steps, "hash", str(self.rootfs), algorithm="sha512", paths=len(now), hash=h,
               recorded=self.hash)
        if h == self.hash:
            return []
        changes = diff_index(self.index(), now)
        return [f"tree {self.key[:24]}… of {render.describe(self.name, self.labels)} was modified "
                f"after rendering (hash {h[:19]}… ≠ recorded {self.hash[:19]}…)"] + \
            [f"  {c}" for c in changes]

    def __repr__(self) -> str:
        return f"Tree({self.key[:24]}…, {self.name}, {len(self.layers)} layers)"

    def _repr_html_(self) -> str:
        import html
        e = html.escape
        order = " → ".join(e(l["name"]) for l in self.layers)
        return (f"<div class='sandbox-tree'><b>{e(self.name)}</b> rendered "
                f"{'(tree-store hit)' if self.hit else ''}<br><code>{e(str(self.rootfs))}</code>"
                f"<br>override order: {order}<br>tree hash <code>{e(self.hash[:27])}…</code></div>")


def _load(path: Path) -> Tree | None:
    if not (path / "rendered").exists():
        return None
    info = json.loads((path / "info.json").read_text())
    return Tree(key=path.name, path=path, image_id=info["image"], name=info["name"],
                labels=info["labels"], hash=(path / "hash").read_text().strip(),
                rendered_at=info["rendered_at"], layers=info["layers"])


def lookup(key: str) -> Tree | None:
    """The rendered tree for ``key``, or None."""
    return _load(trees_dir() / key)


def list_trees() -> list[Tree]:
    d = trees_dir()
    if not d.is_dir():
        return []
    out = [t for p in sorted(d.iterdir()) if p.name.startswith("deps-") and (t := _load(p))]
    return out


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def store_opener(store: Any) -> render.OpenTar:
    """Open a stored image's uncompressed tar for random access (tarfile "r:")."""
    from sandbox.image import aci

    @contextlib.contextmanager
    def open_tar(image_id: str) -> Iterator[tarfile.TarFile]:
        path = store.get(image_id).path
        with aci.archive_errors(str(path)), aci.open_uncompressed(path) as (stream, _):
            with aci.bounded_tar(stream, stream=False) as tar:   # header limits applied
                yield tar

    return open_tar  # type: ignore[return-value]


def render_image(store: Any, ref: Any, *, fetch: render.Fetch | None = None,
                 steps: Steps | None = None, progress: bool = False) -> Tree:
    """Resolve ``ref`` (app string, ID prefix or store Image) and return its rendered tree,
    rendering it only if this dependency set was never rendered before."""
    image = store.get(ref, steps=steps) if isinstance(ref, str) else ref
    graph = render.resolve(store, image, fetch=fetch, steps=steps)
    return ensure(store, graph, steps=steps, progress=progress)


def ensure(store: Any, graph: render.DependencyGraph, *, steps: Steps | None = None,
           progress: bool = False) -> Tree:
    """The tree for ``graph``: from the tree store, or rendered now (to a temporary directory,
    renamed into place when complete, under a per-key flock)."""
    key = graph.key()
    tree = lookup(key)
    if tree is not None:
        record(steps, "check", key, rule="tree store hit: already rendered", tree=str(tree.path))
        tree.hit = True
        return tree
    base = config.private_dir("trees")  # rendered trees keep setuid files and owners: 0700
    with _flock(base / ".locks" / key):
        tree = lookup(key)  # someone else rendered it while we waited
        if tree is not None:
            tree.hit = True
            return tree
        final = base / key
        if final.exists():  # an incomplete tree (no 'rendered' flag): start again
            shutil.rmtree(final)
        tmp = base / f".tmp-{key[:32]}-{os.getpid()}-{os.urandom(3).hex()}"
        tmp.mkdir()
        try:
            trace = render.render(graph, tmp / "rootfs", store_opener(store), steps=steps,
                                  progress=progress)
            lines = tree_index(tmp / "rootfs")
            h = hash_index(lines)
            record(steps, "hash", str(tmp / "rootfs"), algorithm="sha512", paths=len(lines),
                   hash=h)
            top = graph.nodes[graph.top]
            (tmp / "tree.index").write_text("\n".join(lines) + "\n")
            (tmp / "hash").write_text(h + "\n")
            (tmp / "manifest").write_text(json.dumps(top.manifest.to_json(), indent=1))
            (tmp / "trace.json").write_text(json.dumps(trace.to_json()))
            (tmp / "info.json").write_text(json.dumps({
                "image": top.id, "name": top.name, "labels": top.labels,
                "rendered_at": _now(), "renderer": render.RENDERER_VERSION,
                "layers": trace.layers}, indent=1))
            (tmp / "rendered").write_text("")
            os.rename(tmp, final)
            record(steps, "write", str(final), rule="rendered tree renamed into place", hash=h)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    tree = lookup(key)
    assert tree is not None
    return tree


def trees_of(image_id: str) -> list[Tree]:
    """Every rendered tree whose top image is ``image_id``."""
    return [t for t in list_trees() if t.image_id == image_id]


def verify(store: Any, image_id: str, steps: Steps | None = None) -> list[str]:
    """Problems with the rendered trees of ``image_id`` ([] when every tree is intact or there
    is none). For ``sandbox image verify``."""
    problems: list[str] = []
    for t in trees_of(image_id):
        problems += t.verify(steps=steps)
    return problems


def remove(tree: Tree, steps: Steps | None = None) -> None:
    """Delete a tree (refused while a clean copy uses it)."""
    users = [c for c in active_copies() if c.get("tree") == tree.key]
    if users:
        raise SandboxError(f"tree {tree.key[:24]}… is in use by {len(users)} execution(s); "
                           "close them first.")
    with _flock(trees_dir() / ".locks" / tree.key):
        shutil.rmtree(tree.path)
    record(steps, "write", str(tree.path), removed=True)


def gc(store: Any, steps: Steps | None = None) -> list[str]:
    """Remove trees whose top image left the store, unfinished renders and stale locks."""
    removed = []
    base = trees_dir()
    if not base.is_dir():
        return removed
    known = {im.id for im in store.list()}
    for p in sorted(base.iterdir()):
        if p.name.startswith(".tmp-"):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(str(p))
        elif p.name.startswith("deps-"):
            t = _load(p)
            if t is None or t.image_id not in known:
                try:
                    if t is not None:
                        remove(t, steps)
                    else:
                        shutil.rmtree(p)
                    removed.append(str(p))
                except SandboxError:
                    pass
    return removed


# ---------------------------------------------------------------------------------------------
# A clean copy for every execution


def overlay_supported() -> tuple[bool, str]:
    """Whether this process can mount overlayfs, and why not."""
    if os.geteuid() != 0:
        return False, "mounting overlayfs needs root"
    try:
        with open("/proc/filesystems") as f:
            if not any(line.split()[-1] == "overlay" for line in f if line.strip()):
                return False, "the kernel has no overlay filesystem (modprobe overlay)"
    except OSError as e:
        return False, str(e)
    return True, ""


@dataclass
class CleanCopy:
    """One execution's private, writable root filesystem made from a tree.

    ``mode`` is ``overlay`` (lower = the tree's rootfs, read-only; writes land in ``upper``) or
    ``copy`` (a full ``cp -a``). :meth:`close` unmounts and removes everything.
    """

    tree: Tree
    path: Path                    # the root to chroot into
    mode: str
    state: Path                   # $SANDBOX_DIR/copies/sbx-… (upper, work, info.json)
    reason: str = ""              # why overlay was not used
    created_path: bool = False
    closed: bool = False
    steps: Steps | None = field(default=None, repr=False)

    @property
    def upper(self) -> Path:
        return self.state / "upper"

    @property
    def work(self) -> Path:
        return self.state / "work"

    @property
    def mount_options(self) -> str:
        return f"lowerdir={self.tree.rootfs},upperdir={self.upper},workdir={self.work}"

    def changes(self) -> dict[str, str]:
        """What this execution did to its root: {path: "added" | "changed" | "deleted"}.

        Overlay: read from the upper layer (a whiteout, a 0:0 character device, marks a deleted
        path). Copy: the copy compared with the tree's index."""
        out: dict[str, str] = {}
        if self.mode != "overlay":
            base = {json.loads(l)[0]: l for l in self.tree.index()}
            now = {json.loads(l)[0]: l for l in tree_index(self.path)}
            for p in sorted(set(base) | set(now)):
                if p not in now:
                    out[p] = "deleted"
                elif p not in base:
                    out[p] = "added"
                elif base[p] != now[p]:
                    out[p] = "changed"
            return out
        # The lower tree is the image's: its paths are looked at with no link followed (a link
        # there means the upper path is not the lower one's; a followed one could be the host's).
        with inroot.Root(self.tree.rootfs) as lower:
            for dirpath, dirnames, filenames in os.walk(self.upper):
                for n in sorted(dirnames + filenames):
                    full = os.path.join(dirpath, n)
                    rel = "/" + os.path.relpath(full, self.upper)
                    st = os.lstat(full)
                    try:
                        fd = lower.open(rel, os.O_PATH | os.O_NOFOLLOW, follow=False)
                        was = os.fstat(fd)
                        os.close(fd)
                    except OSError:
                        was = None
                    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                        out[rel] = "deleted"
                    elif was is None:
                        out[rel] = "added"
                    elif not (stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(was.st_mode)):
                        out[rel] = "changed"
        return dict(sorted(out.items()))

    def close(self) -> None:
        """Unmount (overlay) and remove the copy and its state. Safe to call twice."""
        if self.closed:
            return
        target = str(self.path)
        if snapshotting(self.steps):   # what this execution wrote, before it is thrown away
            record(self.steps, "check", target, rule="what this execution changed",
                   after=self.film_state("closed", self.changes()))
        if self.mode == "overlay" and mountinfo.is_mount_point(target):
            try:
                libc.umount(target)
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                libc.umount(target, libc.MNT_DETACH)  # still busy: detach lazily
            record(self.steps, "mount", target, op="umount")
        if self.created_path:
            shutil.rmtree(self.path, ignore_errors=True)
        elif self.mode == "copy" and self.path.exists():
            for p in list(self.path.iterdir()):  # the caller's directory: empty it, keep it
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        shutil.rmtree(self.state, ignore_errors=True)
        record(self.steps, "write", str(self.state), removed=True)
        self.closed = True

    def film_state(self, event: str, changes: dict[str, str] | None = None) -> dict[str, Any]:
        """The state a stepper draws (kind ``copy``): the tree, this copy, what it changed."""
        return {"kind": "copy", "tree": self.tree.name, "lower": str(self.tree.rootfs),
                "copy": self.state.name, "mode": self.mode, "path": str(self.path),
                "event": event, "changes": changes or {}}

    def __enter__(self) -> "CleanCopy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def describe(self) -> str:
        if self.mode == "overlay":
            return (f"{self.path}: overlay mount (lower {self.tree.rootfs} read-only, "
                    f"writes go to {self.upper})")
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.path}: plain copy of {self.tree.rootfs}{why}"

    def _repr_html_(self) -> str:
        import html
        return f"<div class='sandbox-copy'><b>{self.mode}</b> {html.escape(self.describe())}</div>"


def clean_copy(tree: Tree, target: Path | str | None = None, *, overlay: bool | None = None,
               steps: Steps | None = None) -> CleanCopy:
    """A fresh writable copy of ``tree`` for one execution.

    ``overlay``: True = overlayfs or an error; False = plain copy; None (default) = overlayfs
    when this process can mount it, else a plain copy (the reason is kept in ``.reason``).
    ``target``: where the root appears (created, or an existing *empty* directory); default a
    new directory under ``$SANDBOX_DIR/copies``. Use it as a context manager, or call close().
    """
    base = config.private_dir("copies")    # upper dirs and plain copies: 0700
    state = base / f"sbx-{os.urandom(6).hex()}"
    state.mkdir()
    created = False
    if target is None:
        path, created = state / "rootfs", True
        path.mkdir()
    else:
        path = Path(os.path.abspath(target))
        if path.exists():
            if not path.is_dir() or path.is_symlink() or any(path.iterdir()):
                shutil.rmtree(state)
                raise SandboxError(f"{path} must be an empty directory (or not exist yet).",
                                   hint="Pick a new directory name.")
        else:
            path.mkdir(parents=True)
            created = True
    reason = ""
    can, why = overlay_supported()
    if overlay is True and not can:
        shutil.rmtree(state)
        if created:
            shutil.rmtree(path)
        if os.geteuid() != 0:
            raise NotRootError("An overlay mount")
        raise SandboxError(f"overlayfs is not available: {why}.", hint="Use --no-overlay.")
    mode = "overlay" if (overlay is not False and can) else "copy"
    if overlay is False:
        reason = "plain copy requested"
    elif not can:
        reason = why
    copy = CleanCopy(tree, path, mode, state, reason, created, steps=steps)
    (state / "info.json").write_text(json.dumps({
        "tree": tree.key, "image": tree.image_id, "name": tree.name, "path": str(path),
        "mode": mode, "created_path": created, "pid": os.getpid(), "at": _now()}, indent=1))
    try:
        if mode == "overlay":
            copy.upper.mkdir()
            copy.work.mkdir()
            try:
                # nosuid, nodev: the copy may sit where other users can reach it (a directory
                # the caller named); the image's setuid files and devices do nothing there
                libc.mount("overlay", str(path), "overlay", libc.MS_NOSUID | libc.MS_NODEV,
                           copy.mount_options)
                record(steps, "mount", str(path), fstype="overlay", lowerdir=str(tree.rootfs),
                       upperdir=str(copy.upper), workdir=str(copy.work),
                       after=copy.film_state("made") if snapshotting(steps) else None)
            except OSError as e:
                if overlay is True:
                    raise SandboxError(f"the overlay mount on {path} failed: {e}.",
                                       hint="Use --no-overlay.") from None
                # e.g. $SANDBOX_DIR itself on overlayfs (a container): fall back to a copy
                copy.mode, copy.reason = "copy", f"overlay mount failed: {e.strerror}"
                shutil.rmtree(copy.upper)
                shutil.rmtree(copy.work)
        if copy.mode == "copy":
            copy_tree(tree.rootfs, path, steps, reason=copy.reason)
            if snapshotting(steps):
                record(steps, "check", str(path), rule="a plain copy is ready",
                       after=copy.film_state("made"))
        _update_info(copy)
    except BaseException:
        copy.close()
        raise
    return copy


def copy_tree(src: Path | str, dest: Path | str, steps: Steps | None = None, **why: str) -> None:
    """A plain, faithful copy of a rendered tree into the (existing) directory ``dest``: owners,
    modes, times, links and special files kept (``cp -a``; reflinks where the file system can)."""
    cp = subprocess.run(["cp", "-a", "--reflink=auto", f"{src}/.", str(dest)],
                        capture_output=True, text=True)
    if cp.returncode != 0:
        raise SandboxError(f"copying {src} to {dest} failed: "
                           f"{cp.stderr.strip().splitlines()[-1] if cp.stderr.strip() else cp.returncode}.",
                           hint="Check the free space of the file system.")
    record(steps, "exec", f"cp -a --reflink=auto {src}/. {dest}", **why)


def _update_info(copy: CleanCopy) -> None:
    p = copy.state / "info.json"
    d = json.loads(p.read_text())
    d.update(mode=copy.mode, reason=copy.reason)
    p.write_text(json.dumps(d, indent=1))


def active_copies() -> list[dict[str, Any]]:
    """Every clean copy not yet closed (from its info.json), with its state directory."""
    base = copies_dir()
    out = []
    if base.is_dir():
        for p in sorted(base.glob("sbx-*")):
            with contextlib.suppress(OSError, ValueError):
                d = json.loads((p / "info.json").read_text())
                d["state"] = str(p)
                out.append(d)
    return out


def reopen(info: dict[str, Any]) -> CleanCopy:
    """A CleanCopy object for an entry of :func:`active_copies` (e.g. to close it)."""
    tree = lookup(info["tree"]) or Tree(info["tree"], trees_dir() / info["tree"], info["image"],
                                        info["name"], {}, "", "", [])
    return CleanCopy(tree, Path(info["path"]), info["mode"], Path(info["state"]),
                     info.get("reason", ""), bool(info.get("created_path")))


def find_copy(path: Path | str) -> CleanCopy | None:
    """The open clean copy whose root is ``path``."""
    want = os.path.abspath(path)
    for info in active_copies():
        if info["path"] == want:
            return reopen(info)
    return None


def close_all(steps: Steps | None = None) -> list[str]:
    """Unmount and remove every clean copy (for `sandbox reset`). Returns their roots."""
    done = []
    for info in active_copies():
        c = reopen(info)
        c.steps = steps
        c.close()
        done.append(info["path"])
    return done
