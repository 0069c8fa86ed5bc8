"""Rendering an app's filesystem (appc 0.8.11 ace.md §Filesystem Setup; aci.md §pathWhitelist).

:func:`render` extracts each layer's ``rootfs`` in the override order (see
:mod:`sandbox.render.graph`) into an empty directory. A path that is already there is
overwritten; a symlink is replaced, never followed; a non-directory written over a directory
removes (shadows) the whole directory below it. While extracting a layer, an entry is dropped
unless *every* image with a non-empty ``pathWhitelist`` on the layer's chain (the image itself
and the images depending on it on the path that reached it) lists it. A sibling's whitelist
never applies. Directories on the way to a listed path are kept. See docs/rendering.md for why.

Every decision lands in a :class:`~sandbox.render.trace.RenderTrace`. Pure functions, no store
layout: the tree store (:mod:`sandbox.render.treestore`) caches renders.
"""
from __future__ import annotations

import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sandbox.image import aci
from sandbox.render.graph import DependencyGraph, Layer, RenderError
from sandbox.render.trace import PathEvent, PathHistory, RenderTrace
from sandbox.steps import Steps, record

OpenTar = Callable[[str], tarfile.TarFile]


def _entry_type(m: tarfile.TarInfo) -> str:
    if m.isdir():
        return "dir"
    if m.issym():
        return "symlink"
    if m.islnk():
        return "hardlink"
    if m.isfifo():
        return "fifo"
    if m.ischr() or m.isblk():
        return "device"
    if m.isreg():
        return "file"
    return "other"


def rootfs_path(name: str) -> str | None:
    """The absolute path inside the rootfs of archive entry ``name`` ("rootfs/bin/sh" → "/bin/sh");
    None for entries outside rootfs (the manifest). Unsafe names raise RenderError."""
    n = name
    while n.startswith("./"):
        n = n[2:]
    if n.startswith("/"):
        raise RenderError(f"archive entry {name!r} is an absolute path; refusing to render it.")
    parts = [p for p in n.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise RenderError(f"archive entry {name!r} contains '..'; refusing to render it.")
    if not parts or parts[0] != "rootfs":
        return None
    return "/" + "/".join(parts[1:])


@dataclass
class _Have:
    type: str
    layer: int


class _Renderer:
    """Extracts layers one by one into ``dest``, keeping ``state`` (path → what is on disk)."""

    def __init__(self, dest: Path, layers: list[Layer], steps: Steps | None) -> None:
        self.dest = dest
        self.layers = layers
        self.steps = steps
        self.state: dict[str, _Have] = {"/": _Have("dir", 0)}
        self.paths: dict[str, PathHistory] = {}
        self.root = os.geteuid() == 0

    def disk(self, path: str) -> str:
        return str(self.dest) + path if path != "/" else str(self.dest)

    def event(self, path: str, ev: PathEvent) -> None:
        self.paths.setdefault(path, PathHistory(path)).events.append(ev)

    def remove(self, path: str, layer: int, at: str) -> None:
        """Remove ``path`` (and, for a directory, all below it) from disk and state."""
        have = self.state.pop(path)
        if have.type == "dir":
            prefix = path + "/"
            for p in [p for p in self.state if p.startswith(prefix)]:
                del self.state[p]
                self.event(p, PathEvent("shadowed", layer, at=at))
            shutil.rmtree(self.disk(path))
        else:
            os.unlink(self.disk(path))

    def ensure_parents(self, path: str, layer: int) -> None:
        parts = path.strip("/").split("/")[:-1]
        cur = ""
        for part in parts:
            cur += "/" + part
            have = self.state.get(cur)
            if have is not None and have.type == "dir":
                continue
            if have is not None:  # a file or symlink where a directory is needed: replace it
                other = have.layer
                self.remove(cur, layer, cur)
                self.event(cur, PathEvent("overrode", layer, "dir", other=other))
            else:
                self.event(cur, PathEvent("implicit", layer, "dir"))
            os.mkdir(self.disk(cur), 0o755)
            self.state[cur] = _Have("dir", layer)
            self.paths[cur].type = "dir"

    def extract(self, layer: Layer, tar: tarfile.TarFile) -> tuple[int, int]:
        """Extract one layer; returns (entries written, entries filtered)."""
        wrote = filtered = 0
        dirs: list[tuple[str, tarfile.TarInfo]] = []
        written_here: dict[str, str] = {}  # rootfs path → disk path, for hardlinks
        for m in tar:
            path = rootfs_path(m.name)
            if path is None:
                continue
            typ = _entry_type(m)
            if typ == "other":
                raise RenderError(f"archive entry {m.name!r} of {layer.image.label} has an "
                                  "unsupported type; refusing to render it.")
            if path == "/":
                if typ == "dir":
                    dirs.append((path, m))
                continue
            if typ == "symlink" and aci.symlink_escapes(path, m.linkname):
                raise RenderError(f"symlink {m.name!r} -> {m.linkname!r} of {layer.image.label} "
                                  "points above the rootfs; refusing to render it.")
            if typ == "device":  # the runtime makes /dev; an image's device nodes are skipped
                self.event(path, PathEvent("skipped", layer.index, typ))
                record(self.steps, "check", path, rule="device node skipped",
                       image=layer.image.name)
                continue
            rejected = [wl.owner for _, wl in layer.whitelists
                        if not wl.admits(path, typ == "dir")]
            if rejected:
                self.event(path, PathEvent("filtered", layer.index, typ, by=rejected))
                filtered += 1
                continue
            self.ensure_parents(path, layer.index)
            have = self.state.get(path)
            if have is not None and have.type == "dir" and typ == "dir":
                self.event(path, PathEvent("merged", layer.index, typ, other=have.layer))
                self.state[path] = _Have("dir", layer.index)
                dirs.append((path, m))
                wrote += 1
                continue
            if have is not None:
                self.remove(path, layer.index, path)
                self.event(path, PathEvent("overrode", layer.index, typ, other=have.layer))
            else:
                self.event(path, PathEvent("wrote", layer.index, typ))
            self.create(path, m, typ, tar, written_here, layer)
            self.state[path] = _Have("file" if typ == "hardlink" else typ, layer.index)
            self.paths[path].type = typ
            if typ == "dir":
                dirs.append((path, m))
            else:
                written_here[path] = self.disk(path)
            wrote += 1
        # Directory metadata last (a read-only directory must not stop its own extraction).
        for path, m in reversed(dirs):
            target = self.disk(path)
            self.chown(target, m)
            os.chmod(target, stat.S_IMODE(m.mode))
            os.utime(target, (m.mtime, m.mtime), follow_symlinks=False)
            if path in self.paths:
                self.paths[path].type = "dir"
        return wrote, filtered

    def nodes_name(self, image_id: str) -> str:
        for l in self.layers:
            if l.image.id == image_id:
                return l.image.name
        return image_id

    def chown(self, target: str, m: tarfile.TarInfo) -> None:
        if self.root:
            os.lchown(target, m.uid, m.gid)

    def create(self, path: str, m: tarfile.TarInfo, typ: str, tar: tarfile.TarFile,
               written_here: dict[str, str], layer: Layer) -> None:
        target = self.disk(path)
        if typ == "dir":
            os.mkdir(target, 0o700)
            return
        if typ == "symlink":
            os.symlink(m.linkname, target)  # stored as is; never followed while rendering
            self.chown(target, m)
            os.utime(target, (m.mtime, m.mtime), follow_symlinks=False)
            return
        if typ == "hardlink":
            link = rootfs_path(m.linkname)
            if link is None:
                raise RenderError(f"hard link {m.name!r} of {layer.image.label} points outside "
                                  f"rootfs ({m.linkname!r}); refusing to render it.")
            src = written_here.get(link)
            have = self.state.get(link)
            if src is not None and have is not None and have.layer == layer.index \
                    and have.type == "file":
                os.link(src, target)
                return
            # The target was filtered out or overridden: write the content as a file of its own.
            f = tar.extractfile(m)
            if f is None:
                raise RenderError(f"hard link {m.name!r} of {layer.image.label}: its target "
                                  f"{m.linkname!r} is not a file in the archive.")
            self._write(target, f, m)
            return
        if typ == "fifo":
            os.mkfifo(target, 0o600)
        else:
            f = tar.extractfile(m)
            assert f is not None
            self._write(target, f, m)
            return
        self.chown(target, m)
        os.chmod(target, stat.S_IMODE(m.mode))
        os.utime(target, (m.mtime, m.mtime))

    def _write(self, target: str, f: Any, m: tarfile.TarInfo) -> None:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)
        self.chown(target, m)
        os.chmod(target, stat.S_IMODE(m.mode))
        os.utime(target, (m.mtime, m.mtime))


def render(graph: DependencyGraph, dest: Path | str, open_tar: OpenTar, *,
           steps: Steps | None = None, progress: bool = False) -> RenderTrace:
    """Render ``graph``'s top image into the empty directory ``dest``.

    ``open_tar(image_id)`` returns the image's archive as a random-access ``tarfile.TarFile``.
    Returns the :class:`RenderTrace`.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise RenderError(f"{dest} is not empty; an app's filesystem is rendered in an empty "
                          "directory (ace.md §Filesystem Setup).", hint="Pick a new directory.")
    layers = graph.layers()
    r = _Renderer(dest, layers, steps)
    bar = None
    if progress:
        from sandbox._progress import tqdm_class
        bar = tqdm_class()(total=len(layers), desc="render", unit="layer")
    try:
        for layer in layers:
            with open_tar(layer.image.id) as tar:
                wrote, filtered = r.extract(layer, tar)
            record(steps, "write", f"layer {layer.index}: {layer.image.label}",
                   entries=wrote, filtered=filtered,
                   whitelists=",".join(r.nodes_name(i) for i, _ in layer.whitelists) or "-")
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    for p, h in r.paths.items():
        have = r.state.get(p)
        h.final = have.layer if have is not None else None
    layer_info = [{"index": l.index, "id": l.image.id, "name": l.image.name,
                   "labels": l.image.labels, "chain": [r.nodes_name(i) for i in l.chain],
                   "whitelists": [r.nodes_name(i) for i, _ in l.whitelists]} for l in layers]
    return RenderTrace(layer_info, dict(sorted(r.paths.items())))
