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

import tarfile
from pathlib import Path
from typing import Any, Callable

from sandbox.image.extract import ArchiveTooLarge, Extractor, Rules, UnsafeArchive, normalize_entry
from sandbox.render.graph import DependencyGraph, Layer, RenderError
from sandbox.render.trace import PathEvent, PathHistory, RenderTrace
from sandbox.steps import Steps, record, snapshotting

OpenTar = Callable[[str], tarfile.TarFile]


def rootfs_path(name: str) -> str | None:
    """The absolute path inside the rootfs of archive entry ``name`` ("rootfs/bin/sh" → "/bin/sh");
    None for entries outside rootfs (the manifest). Unsafe names raise RenderError."""
    n = normalize_entry(name)
    if n is None:
        raise RenderError(f"archive entry {name!r} is absolute or contains '..'; refusing to "
                          "render it.")
    if n != "rootfs" and not n.startswith("rootfs/"):
        return None
    return "/" + n[len("rootfs/"):] if n != "rootfs" else "/"


class _Renderer:
    """Extracts layers one by one into ``dest`` with the one extractor, turning its decisions
    into the render trace."""

    def __init__(self, dest: Path, layers: list[Layer], steps: Steps | None) -> None:
        self.layers = layers
        self.steps = steps
        self.paths: dict[str, PathHistory] = {}
        # The tree store is private (0700) and what runs in it is the image's own business:
        # setuid bits and file capabilities are kept; devices are skipped (the runtime makes /dev).
        self.ex = Extractor(dest, Rules(keep_setid=True), steps=steps, on_event=self.event)

    def event(self, path: str, kind: str, layer: int, typ: str = "", other: int | None = None,
              by: list[str] | None = None, at: str | None = None) -> None:
        h = self.paths.get(path)
        if h is None:
            h = self.paths[path] = PathHistory(path)
        h.events.append(PathEvent(kind, layer, typ, other=other, by=list(by or []), at=at))
        if kind in ("wrote", "overrode", "implicit"):
            h.type = typ

    def extract(self, layer: Layer, tar: tarfile.TarFile) -> tuple[int, int]:
        """Extract one layer; returns (entries written, entries filtered)."""
        wls = layer.whitelists

        def admit(path: str, is_dir: bool) -> list[str]:
            return [wl.owner for _, wl in wls if not wl.admits(path, is_dir)]

        try:
            counts = self.ex.apply(tar, layer=layer.index, prefix="rootfs",
                                   admit=admit if wls else None, what=layer.image.label)
        except (UnsafeArchive, ArchiveTooLarge) as e:
            raise RenderError(str(e)) from e
        except OSError as e:
            raise RenderError(f"rendering {layer.image.label} into {self.ex.root} failed: "
                              f"{e.strerror or e}.") from e
        except (tarfile.TarError, EOFError) as e:
            raise RenderError(f"the archive of {layer.image.label} is unreadable ({e}).") from e
        return counts["entries"], counts["filtered"]

    def nodes_name(self, image_id: str) -> str:
        for l in self.layers:
            if l.image.id == image_id:
                return l.image.name
        return image_id


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
    # For a stepper: each layer's step names the layer; the trace (who wrote what, in which
    # layer) is the recorded state every picture is drawn from, filled in once it is complete.
    film: dict[str, Any] | None = {"graph": graph, "trace": None} if snapshotting(steps) else None
    try:
        for layer in layers:
            with open_tar(layer.image.id) as tar:
                wrote, filtered = r.extract(layer, tar)
            record(steps, "write", f"layer {layer.index}: {layer.image.label}",
                   entries=wrote, filtered=filtered,
                   whitelists=",".join(r.nodes_name(i) for i, _ in layer.whitelists) or "-",
                   after={"kind": "render", "layer": layer.index, "film": film} if film else None)
            if bar is not None:
                bar.update(1)
    finally:
        r.ex.close()
        if bar is not None:
            bar.close()
    owners = r.ex.owners()
    for p, h in r.paths.items():
        h.final = owners.get(p)
    layer_info = [{"index": l.index, "id": l.image.id, "name": l.image.name,
                   "labels": l.image.labels, "chain": [r.nodes_name(i) for i in l.chain],
                   "whitelists": [r.nodes_name(i) for i, _ in l.whitelists]} for l in layers]
    trace = RenderTrace(layer_info, dict(sorted(r.paths.items())))
    if film is not None:
        film["trace"] = trace
    return trace
