"""Rendering an app's filesystem (spec 0.8.11, ace.md §Filesystem Setup; aci.md §dependencies,
§pathWhitelist, §Dependency Matching).

The spec's process, in the words of this module:

1. :func:`resolve` finds every dependency by ``imageName`` + ``labels`` (an ``imageID``, when
   given, must match) and returns the :class:`DependencyGraph` (a tree or a DAG; a cycle is an
   error).
2. :meth:`DependencyGraph.layers` flattens it depth first into the *override order*: each
   dependency's own dependencies first, then the dependency, in listed order, the image last.
   A→[B,C], C→[D] gives B, D, C, A; A→[B,C], B→[D], C→[D] gives D, B, D, C, A (D twice).
3. :func:`render` extracts each layer's ``rootfs`` in that order into an empty directory. A
   path that is already there is overwritten; a symlink is replaced, never followed; a
   non-directory written over a directory removes (shadows) the whole directory below it.
4. While extracting a layer, an entry is dropped unless *every* image with a non-empty
   ``pathWhitelist`` on the layer's chain (the image itself and the images depending on it on
   the path that reached it) lists it. A sibling's whitelist never applies. Directories on the
   way to a listed path are kept. See docs/rendering.md for why.

Every decision lands in a :class:`RenderTrace` (who wrote each path, whom it overrode, which
whitelist removed it, what shadowed it) that notebooks draw.

Pure functions, no store layout: the tree store (sandbox/treestore.py) caches renders.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from sandbox import aci
from sandbox.errors import SandboxError
from sandbox.manifest import Dependency, ImageManifest
from sandbox.steps import Steps, record

# Bumped whenever the rendering rules change, so cached trees of an older renderer are not reused.
RENDERER_VERSION = 1
# A DAG with many shared dependencies flattens to many layers (each path is examined again, as
# the spec's second example says); past this many we stop instead of extracting forever.
MAX_LAYERS = 256


class RenderError(SandboxError):
    """An image cannot be rendered (unsafe archive entry, bad whitelist, too many layers)."""


class DependencyError(SandboxError):
    """A dependency cannot be resolved."""


class DependencyNotFound(DependencyError):
    def __init__(self, name: str, labels: dict[str, str], wanted_by: str) -> None:
        self.name, self.labels, self.wanted_by = name, dict(labels), wanted_by
        super().__init__(
            f"{wanted_by} depends on {describe(name, labels)}, which is not in the image store.",
            hint="Import or fetch it first (e.g. `sandbox image import FILE.aci`).")


class DependencyMismatch(DependencyError):
    def __init__(self, name: str, labels: dict[str, str], wanted_id: str, found: list[str],
                 wanted_by: str) -> None:
        self.name, self.labels, self.wanted_id, self.found = name, dict(labels), wanted_id, found
        super().__init__(
            f"{wanted_by} depends on {describe(name, labels)} with imageID {short(wanted_id)}, "
            f"but the store's matching image is {', '.join(short(f) for f in found)} "
            "(aci.md §Dependency Matching: the ID MUST match).",
            hint="Import the exact image the manifest names, or rebuild the image against the "
                 "dependency you have.")


class DependencyCycle(DependencyError):
    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(
            "the dependencies form a cycle: " + " → ".join(cycle) + ".",
            hint="Dependencies must form a tree or a DAG (ace.md §Filesystem Setup); remove one "
                 "of these edges.")


def short(image_id: str, n: int = 12) -> str:
    """``sha512-0123456789ab`` for display."""
    return image_id[: len("sha512-") + n] if image_id.startswith("sha512-") else image_id[:n]


def describe(name: str, labels: dict[str, str]) -> str:
    """``example.com/busybox (version=1.36, arch=amd64)``."""
    if not labels:
        return name
    return f"{name} ({', '.join(f'{k}={v}' for k, v in labels.items())})"


# ---------------------------------------------------------------------------------------------
# The dependency graph (aci.md §dependencies, §Dependency Matching)


@dataclass(frozen=True)
class Node:
    """One image of the graph: its ID, name, labels and parsed manifest."""

    id: str
    name: str
    labels: dict[str, str]
    manifest: ImageManifest

    @property
    def label(self) -> str:
        return describe(self.name, self.labels)


@dataclass(frozen=True)
class Layer:
    """One extraction pass of the override order.

    ``chain`` is the path of image IDs from the top image down to this one; ``whitelists`` are
    the non-empty pathWhitelists on that chain, top first, as (image ID, Whitelist).
    """

    index: int                      # 1-based position in the override order
    image: Node
    chain: tuple[str, ...]
    whitelists: tuple[tuple[str, "Whitelist"], ...]

    @property
    def depth(self) -> int:
        return len(self.chain) - 1


@dataclass
class DependencyGraph:
    """The resolved dependencies: images by ID and edges in listed order."""

    top: str
    nodes: dict[str, Node]
    edges: dict[str, list[str]]

    def layers(self) -> list[Layer]:
        """The override order (ace.md §Filesystem Setup): depth first, dependencies in listed
        order before the image that lists them; a shared dependency appears once per path."""
        out: list[Layer] = []

        def visit(image_id: str, chain: tuple[str, ...]) -> None:
            chain = chain + (image_id,)
            for dep in self.edges[image_id]:
                visit(dep, chain)
            if len(out) >= MAX_LAYERS:
                raise RenderError(f"{self.nodes[self.top].label} flattens to more than "
                                  f"{MAX_LAYERS} layers; simplify its dependencies.")
            wls = tuple((i, wl) for i in chain
                        if (wl := Whitelist.of(self.nodes[i])) is not None)
            out.append(Layer(len(out) + 1, self.nodes[image_id], chain, wls))

        visit(self.top, ())
        return out

    def key(self) -> str:
        """The tree-store key: like rkt's ``deps-`` + a hash of the flattened image IDs (here
        with each layer's chain, and the renderer version)."""
        flat = [[layer.image.id, list(layer.chain)] for layer in self.layers()]
        blob = json.dumps({"renderer": RENDERER_VERSION, "layers": flat}, separators=(",", ":"))
        return "deps-sha512-" + hashlib.sha512(blob.encode()).hexdigest()

    def order_names(self) -> list[str]:
        return [layer.image.name for layer in self.layers()]

    def to_json(self) -> dict[str, Any]:
        return {"top": self.top,
                "nodes": {i: {"name": n.name, "labels": n.labels,
                              "pathWhitelist": n.manifest.path_whitelist}
                          for i, n in self.nodes.items()},
                "edges": self.edges,
                "order": [{"index": l.index, "image": l.image.id, "name": l.image.name,
                           "chain": list(l.chain),
                           "whitelists": [i for i, _ in l.whitelists]} for l in self.layers()]}

    def text(self) -> str:
        """The DAG as an indented tree and the override order, for the CLI."""
        lines = ["dependencies (as listed):"]

        def walk(i: str, depth: int, seen: tuple[str, ...]) -> None:
            n = self.nodes[i]
            pwl = f"  pathWhitelist: {len(n.manifest.path_whitelist)} paths" \
                if n.manifest.path_whitelist else ""
            lines.append(f"{'  ' * depth}{'└─ ' if depth else ''}{n.label}  {short(i)}{pwl}")
            for d in self.edges[i]:
                walk(d, depth + 1, seen + (i,))

        walk(self.top, 0, ())
        lines.append("")
        lines.append("override order (first is extracted first; later overrides earlier):")
        for layer in self.layers():
            wl = ", ".join(self.nodes[i].name for i, _ in layer.whitelists)
            via = " ← ".join(self.nodes[i].name for i in reversed(layer.chain[:-1]))
            lines.append(f"  {layer.index:2}. {layer.image.label}"
                         + (f"   via {via}" if via else "")
                         + (f"   filtered by: {wl}" if wl else ""))
        return "\n".join(lines)


class ImageSource(Protocol):
    """What resolution needs from the image store (sandbox.store.Store provides it)."""

    def find(self, name: str, labels: dict[str, str] | None = None) -> list[Any]: ...
    def manifest(self, image_id: str) -> ImageManifest: ...


Fetch = Callable[[str, dict[str, str]], Any]


def _image_id(image: Any) -> str:
    return image if isinstance(image, str) else image.id


def _carried_manifest(image: Any) -> ImageManifest | None:
    # store.Image objects carry their parsed manifest; plain IDs do not.
    return getattr(image, "manifest", None) if not isinstance(image, str) else None


def _id_matches(candidate: str, wanted: str) -> bool:
    # types.md §Image ID: "sha512-<hex>"; a shortened wanted ID matches by prefix.
    return candidate == wanted or (len(wanted) > len("sha512-") and candidate.startswith(wanted))


def resolve(source: ImageSource, top: Any, *, fetch: Fetch | None = None,
            steps: Steps | None = None) -> DependencyGraph:
    """Resolve ``top`` (an image ID or an object with ``.id``) and all its dependencies.

    Each dependency is matched by ``imageName`` + ``labels`` among the store's images (aci.md
    §Dependency Matching); when none matches and ``fetch`` is given, ``fetch(name, labels)``
    provides it (discovery). If the dependency names an ``imageID`` it must match.
    """
    nodes: dict[str, Node] = {}
    edges: dict[str, list[str]] = {}
    memo: dict[tuple[str, tuple[tuple[str, str], ...], str | None], str] = {}

    carried: dict[str, ImageManifest] = {}

    def note(image: Any) -> str:
        m = _carried_manifest(image)
        if m is not None:
            carried[_image_id(image)] = m
        return _image_id(image)

    top_id = note(top)

    def node(image_id: str) -> Node:
        if image_id not in nodes:
            m = carried.get(image_id) or source.manifest(image_id)
            record(steps, "read", f"manifest of {short(image_id)}", name=m.name)
            nodes[image_id] = Node(image_id, m.name, dict(m.labels), m)
        return nodes[image_id]

    def match(dep: Dependency, wanted_by: str) -> str:
        key = (dep.image_name, tuple(sorted(dep.labels.items())), dep.image_id)
        if key in memo:
            return memo[key]
        found = [note(c) for c in source.find(dep.image_name, dict(dep.labels))]
        record(steps, "check", f"dependency {describe(dep.image_name, dep.labels)}",
               candidates=len(found), imageID=dep.image_id or "-")
        if not found and fetch is not None:
            record(steps, "fetch", describe(dep.image_name, dep.labels))
            found = [note(fetch(dep.image_name, dict(dep.labels)))]
        if not found:
            raise DependencyNotFound(dep.image_name, dep.labels, wanted_by)
        if dep.image_id:
            exact = [f for f in found if _id_matches(f, dep.image_id)]
            if not exact:
                raise DependencyMismatch(dep.image_name, dep.labels, dep.image_id, found,
                                         wanted_by)
            found = exact
        # The store lists the best match first (the latest import); take it.
        memo[key] = found[0]
        return found[0]

    def visit(image_id: str, stack: list[str]) -> None:
        n = node(image_id)
        if image_id in edges:  # a shared dependency (DAG): resolved once
            return
        edges[image_id] = []
        path = stack + [image_id]
        for dep in n.manifest.dependencies:
            dep_id = match(dep, n.label)
            if dep_id in path:
                cycle = path[path.index(dep_id):] + [dep_id]
                raise DependencyCycle([node(i).label for i in cycle])
            edges[image_id].append(dep_id)
            visit(dep_id, path)

    visit(top_id, [])
    graph = DependencyGraph(top_id, nodes, edges)
    record(steps, "check", "override order", order=" → ".join(graph.order_names()))
    return graph


# ---------------------------------------------------------------------------------------------
# pathWhitelist (aci.md §pathWhitelist; ace.md §Filesystem Setup step 3)


@dataclass(frozen=True)
class Whitelist:
    """An image's non-empty pathWhitelist, normalised ("/c/" and "/c" are the same path)."""

    owner: str                     # image name, for messages
    paths: frozenset[str]
    parents: frozenset[str]        # every proper ancestor of a listed path

    @classmethod
    def of(cls, node: Node) -> "Whitelist | None":
        pwl = node.manifest.path_whitelist
        if not pwl:  # "An empty list is equivalent to an absent value"
            return None
        return cls.build(node.name, pwl)

    @classmethod
    def build(cls, owner: str, pwl: Iterable[str]) -> "Whitelist":
        paths, parents = set(), set()
        for p in pwl:
            if not p.startswith("/"):
                raise RenderError(f"pathWhitelist entry {p!r} of {owner} is not an absolute path "
                                  "(aci.md: the whitelist is a set of absolute paths).")
            p = posixpath.normpath("/" + p.lstrip("/"))
            paths.add(p)
            while p != "/":
                p = posixpath.dirname(p)
                parents.add(p)
        return cls(owner, frozenset(paths), frozenset(parents))

    def admits(self, path: str, is_dir: bool) -> bool:
        """A listed path survives; so does a directory on the way to a listed path."""
        return path in self.paths or (is_dir and path in self.parents)


# ---------------------------------------------------------------------------------------------
# The render trace


@dataclass
class PathEvent:
    """Something that happened to one path in one layer.

    kind: ``wrote`` (first copy), ``overrode`` (replaced a copy from layer ``other``),
    ``merged`` (a directory over a directory: contents merge, metadata from this layer),
    ``implicit`` (a parent directory created for an entry), ``filtered`` (dropped by the
    whitelists of ``by``), ``shadowed`` (removed because layer ``layer`` wrote a non-directory
    at ``at``, an ancestor or the path itself).
    """

    kind: str
    layer: int
    type: str = ""
    other: int | None = None
    by: list[str] = field(default_factory=list)
    at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], "")}


@dataclass
class PathHistory:
    path: str
    events: list[PathEvent] = field(default_factory=list)
    final: int | None = None      # the layer whose copy is in the rendered tree
    type: str = ""                # its type there (dir, file, symlink, hardlink, fifo, device)

    @property
    def kind(self) -> str:
        """The type in the tree, or (for a removed path) the type the last layer offered."""
        return self.type or next((e.type for e in reversed(self.events) if e.type), "")


@dataclass
class RenderTrace:
    """For every path any layer offered: what each layer did with it, and who won."""

    layers: list[dict[str, Any]]
    paths: dict[str, PathHistory]

    # -- queries the notebook uses
    def layer(self, index: int) -> dict[str, Any]:
        return self.layers[index - 1]

    def owner(self, path: str) -> str | None:
        """Name of the image whose copy of ``path`` is in the tree (None: not in the tree)."""
        h = self.paths.get(path)
        return None if h is None or h.final is None else self.layer(h.final)["name"]

    def final_paths(self) -> dict[str, PathHistory]:
        return {p: h for p, h in self.paths.items() if h.final is not None}

    def removed_by_whitelist(self) -> dict[str, list[tuple[int, list[str]]]]:
        """Paths that some layer offered but a whitelist dropped: {path: [(layer, by), …]}."""
        out: dict[str, list[tuple[int, list[str]]]] = {}
        for p, h in self.paths.items():
            for e in h.events:
                if e.kind == "filtered":
                    out.setdefault(p, []).append((e.layer, e.by))
        return out

    def overridden(self) -> dict[str, list[PathEvent]]:
        return {p: [e for e in h.events if e.kind == "overrode"] for p, h in self.paths.items()
                if any(e.kind == "overrode" for e in h.events)}

    def shadowed(self) -> dict[str, list[PathEvent]]:
        return {p: [e for e in h.events if e.kind == "shadowed"] for p, h in self.paths.items()
                if any(e.kind == "shadowed" for e in h.events)}

    # -- (de)serialisation, kept next to the tree in the tree store
    def to_json(self) -> dict[str, Any]:
        return {"layers": self.layers,
                "paths": {p: {"final": h.final, "type": h.type,
                              "events": [e.to_json() for e in h.events]}
                          for p, h in self.paths.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RenderTrace":
        return cls(d["layers"], {p: PathHistory(p, [PathEvent(**e) for e in v["events"]],
                                                v["final"], v["type"])
                                 for p, v in d["paths"].items()})

    # -- views
    def describe(self, path: str) -> str:
        h = self.paths[path]
        name = lambda i: f"{i}:{self.layer(i)['name']}"  # noqa: E731
        parts = []
        for e in h.events:
            if e.kind == "filtered":
                parts.append(f"{name(e.layer)} filtered out by the whitelist of {', '.join(e.by)}")
            elif e.kind == "shadowed":
                parts.append(f"shadowed by {name(e.layer)}'s non-directory {e.at}")
            elif e.kind == "overrode":
                parts.append(f"{name(e.layer)} overrode {name(e.other)}"  # type: ignore[arg-type]
                             if e.other else f"{name(e.layer)} wrote")
            elif e.kind == "merged":
                parts.append(f"{name(e.layer)} merged into {name(e.other)}'s directory"  # type: ignore[arg-type]
                             )
            else:
                parts.append(f"{name(e.layer)} {e.kind} {e.type}".rstrip())
        return "; ".join(parts)

    def text(self, paths: Iterable[str] | None = None) -> str:
        rows = []
        for p in sorted(paths if paths is not None else self.paths):
            h = self.paths[p]
            owner = self.owner(p) or "(removed)"
            rows.append(f"{p:40} {h.kind or '-':8} {owner:28} {self.describe(p)}")
        head = f"{'path':40} {'type':8} {'from':28} history (layer:image)"
        return "\n".join([head] + rows)

    def _repr_html_(self) -> str:
        import html
        from sandbox.viz import color_for
        order = [l["name"] for l in self.layers]
        rows = []
        for p in sorted(self.paths):
            h = self.paths[p]
            owner = self.owner(p)
            col = color_for(owner, order) if owner else "#eeeeee"
            style = "" if owner else "text-decoration:line-through;color:#888"
            rows.append(f"<tr><td style='background:{col}'>&nbsp;</td>"
                        f"<td style='{style}'><code>{html.escape(p)}</code></td>"
                        f"<td>{html.escape(h.kind)}</td><td>{html.escape(owner or 'removed')}</td>"
                        f"<td>{html.escape(self.describe(p))}</td></tr>")
        return ("<table class='sandbox-trace'><thead><tr><th></th><th>path</th><th>type</th>"
                "<th>from</th><th>history</th></tr></thead><tbody>" + "".join(rows)
                + "</tbody></table>")


# ---------------------------------------------------------------------------------------------
# Extraction (safe: nothing escapes the target, symlinks are never followed)

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
